"""Warehouse run time at 10,000 documents: a full run against an incremental run (1 % changed).

Each run is the `twin_warehouse` pipeline's stages called directly, in order: extract-load
(MongoDB → `raw.documents`), raw quality gate, dbt staging + intermediate, enrichment (language,
MinHash near-duplicates), dbt marts, marts quality gate. The corpus is synthetic but built from
the sample author's sentences, so documents are distinct, realistic prose. Everything runs in a
scratch Postgres database and a scratch Mongo database of the running stack, dropped at the end.
It ends with an md5 of what `marts.documents` holds, so runs of two code versions (the other on
`PYTHONPATH`) show whether their output is the same.

    set -a; . .twin/stack.env; set +a
    python benchmarks/warehouse.py [--documents 10000] [--changed-fraction 0.01] [--scale 1]
                                   [--nodes 10]

`--scale` multiplies `--documents` (0.1 for a quick run).
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from sample_author import load_documents
from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.quality import enforce_gate
from twin.settings import Settings, load_settings
from twin.store.extract_load import run_extract_load
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore
from twin.store.warehouse import scratch_database
from twin.warehouse.dbt import DbtRunResult, run_dbt
from twin.warehouse.enrich import run_enrichment

PLATFORMS = [
    (Platform.BLOG, DocumentKind.ARTICLE),
    (Platform.MEDIUM, DocumentKind.ARTICLE),
    (Platform.SUBSTACK, DocumentKind.ARTICLE),
    (Platform.LINKEDIN, DocumentKind.POST),
]


# What the marts hold, comparable across runs and code versions (`updated_at` is a clock).
CONTENT_CHECKSUM = """
    select md5(string_agg(md5(row(document_id, author, platform, document_kind, title, url,
                                  published_at, word_count, language, language_confidence, body,
                                  clean_hash)::text), '' order by document_id))
    from marts.documents"""


def sentence_pool() -> list[str]:
    sentences: list[str] = []
    for doc in load_documents():
        sentences += [s.strip() for s in re.split(r"(?<=[.!?])\s+", doc.body) if len(s) > 40]
    return sentences


def synthetic_document(n: int, pool: list[str], rng: random.Random) -> RawDocument:
    platform, kind = PLATFORMS[n % len(PLATFORMS)]
    count = 6 if kind is DocumentKind.POST else 30
    picked = rng.sample(pool, count)
    body = "\n\n".join(" ".join(picked[i : i + 3]) for i in range(0, count, 3))
    return RawDocument(
        url=f"https://bench.example.org/{platform.value}/{n}",
        platform=platform,
        kind=kind,
        author="Ada Lindqvist",
        title=f"Notes on pipelines, part {n}",
        text=body,
        published_at=datetime(2022, 1, 1, tzinfo=UTC) + timedelta(hours=n),
        source_url=f"https://bench.example.org/{platform.value}/feed",
    )


def timed(stages: dict[str, float], name: str, step: Callable[[], object]) -> object:
    began = time.perf_counter()
    result = step()
    stages[name] = time.perf_counter() - began
    return result


def print_slowest_nodes(label: str, result: object, count: int) -> None:
    """A dbt stage's `count` slowest nodes and what the rest of its time went to."""
    if not isinstance(result, DbtRunResult):
        return
    nodes = sorted(result.nodes, key=lambda n: n.seconds, reverse=True)
    in_nodes = sum(n.seconds for n in result.nodes)
    print(
        f"  {label}: {len(nodes)} nodes, {in_nodes:.1f} s in nodes, "
        f"{result.seconds - in_nodes:.1f} s outside them (start-up, parse, hooks)"
    )
    for n in nodes[:count]:
        print(f"    {n.seconds:6.2f} s  {n.resource_type:<5} {n.name}")


def warehouse_run(settings: Settings, slowest: int = 0) -> dict[str, float]:
    """One pass of the pipeline's stages; seconds per stage (and, with `slowest`, each dbt
    stage's slowest nodes printed)."""
    stages: dict[str, float] = {}
    timed(stages, "extract-load", lambda: run_extract_load(settings))
    timed(stages, "raw gate", lambda: enforce_gate("raw_documents", settings))
    upstream = timed(
        stages,
        "dbt staging+intermediate",
        lambda: run_dbt(["build", "--select", "tag:staging", "tag:intermediate"], settings),
    )
    timed(stages, "enrichment", lambda: run_enrichment(settings))
    marts = timed(
        stages, "dbt marts", lambda: run_dbt(["build", "--select", "tag:marts"], settings)
    )
    if slowest:
        print_slowest_nodes("dbt staging+intermediate", upstream, slowest)
        print_slowest_nodes("dbt marts", marts, slowest)
    timed(stages, "marts gate", lambda: enforce_gate("marts_documents", settings))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--changed-fraction", type=float, default=0.01)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --documents")
    parser.add_argument(
        "--nodes", type=int, default=0, help="print each dbt stage's N slowest nodes per run"
    )
    args = parser.parse_args()
    args.documents = max(1, round(args.documents * args.scale))

    base = load_settings()
    with (
        scratch_database(base.require("warehouse_dsn"), "bench_wh") as dsn,
        tempfile.TemporaryDirectory(prefix="twin-bench-objects-") as objects,
    ):
        name = dsn.rsplit("/", 1)[1]
        settings = base.model_copy(
            update={
                "warehouse_dsn": dsn,
                "mongo_database": name,
                "object_store_url": Path(objects).as_uri(),
            }
        )
        rng = random.Random(42)
        pool = sentence_pool()
        docs = [synthetic_document(n, pool, rng) for n in range(args.documents)]
        with mongo_client(settings) as client:
            try:
                store = RawDocumentStore(twin_database(client, settings))
                store.ensure_indexes()
                for start in range(0, len(docs), 1000):
                    store.upsert(docs[start : start + 1000])
                print("full run")
                full = warehouse_run(settings, args.nodes)
                count = int(args.documents * args.changed_fraction)
                changed = rng.sample(range(args.documents), count)
                edited = [
                    docs[n].model_copy(
                        update={"text": docs[n].text + "\n\nUpdate: one more lesson."}
                    )
                    for n in changed
                ]
                store.upsert(edited)
                print("incremental run")
                incremental = warehouse_run(settings, args.nodes)
            finally:
                client.drop_database(name)
        with psycopg.connect(dsn) as conn:
            marts = conn.execute("select count(*) from marts.documents").fetchone()[0]
            content = conn.execute(CONTENT_CHECKSUM).fetchone()[0]

    print(
        f"{args.documents} documents ({marts} mart rows); incremental run: {len(changed)} "
        f"changed ({args.changed_fraction:.0%})"
    )
    print(f"{'stage':<26} {'full s':>8} {'incr. s':>8}")
    for stage in full:
        print(f"{stage:<26} {full[stage]:>8.1f} {incremental[stage]:>8.1f}")
    total_full, total_incr = sum(full.values()), sum(incremental.values())
    print(f"{'total':<26} {total_full:>8.1f} {total_incr:>8.1f}")
    print(f"incremental / full = {total_incr / total_full:.3f}")
    print(f"marts.documents content (every column but updated_at), md5: {content}")


if __name__ == "__main__":
    main()
