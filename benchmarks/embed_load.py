"""Feature pipeline throughput: chunk + embed + load in the embedder's fast precision against the
old fp32 path, both timed in the same run, against the bare embedding model, and COPY.

On the sample author's corpus (its writing and repositories, repeated under new document ids
until there are at least `--min-chunks` × `--scale` chunks), each pipeline run in a scratch
database of its own created on the stack's warehouse (`WAREHOUSE_DSN`) and dropped afterwards:

- bare model: `Embedder.encode` over exactly the texts the pipeline embeds (context line +
  content), same batch size;
- pipeline: `sync_features` from an empty index to an active one: read the marts, chunk, embed,
  binary COPY, build the HNSW and GIN indexes, ANALYZE, activate;
- fp32 is the old path (`Embedder(precision="fp32")`); "fast" is the settings' precision
  (`TWIN_EMBEDDING_PRECISION`, default auto: bf16 on a CPU with native bf16). The two alternate,
  `--repeats` times each (another process on the machine hits both alike), and medians are shown;
  the headline is fast pipeline / fp32 pipeline (aim >= 2), with the cosine of each fast vector
  to its fp32 one (min and mean) beside it;
- COPY: `--copy-rows` × `--scale` precomputed rows (random unit vectors of the model's dimension)
  by binary COPY straight into a chunk table, and through `write_chunks` (COPY to a stage + upsert).

The models are loaded and warmed up before anything is timed.

    set -a; . .twin/stack.env; set +a
    python benchmarks/embed_load.py [--scale 1] [--min-chunks 1500] [--batch-size 64]
                                    [--copy-rows 20000] [--repeats 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and benchmarks/datasets.py would
# shadow the `datasets` package that sentence-transformers imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from sample_author import AUTHOR, load_documents  # noqa: E402
from sample_author.content import REPOS_DIR  # noqa: E402
from twin.features.chunk import ChunkBudget, MartDocument, chunk_document  # noqa: E402
from twin.features.embed import Embedder  # noqa: E402
from twin.features.pipeline import FeatureSyncResult, sync_features  # noqa: E402
from twin.settings import Settings, load_settings  # noqa: E402
from twin.store import vectors  # noqa: E402
from twin.store.vectors import ChunkRow  # noqa: E402
from twin.store.warehouse import scratch_database, warehouse_connection  # noqa: E402

MARTS_DDL = """
create schema if not exists marts;
create table marts.documents (
    document_id text primary key, author text not null, platform text not null,
    document_kind text not null, title text, url text, published_at timestamptz,
    word_count integer, language text, body text not null, clean_hash text not null,
    updated_at timestamptz
);
"""


def sample_corpus() -> list[MartDocument]:
    """The sample author's documents and repositories (README + docs) as mart documents."""
    docs = [
        MartDocument(
            document_id=d.key, author=AUTHOR.name, platform=d.platform, document_kind=d.kind,
            title=d.title, url=f"https://sample-author.invalid/{d.key}", published_at=d.date,
            language="en", body=d.body, clean_hash="",
        )
        for d in load_documents()
    ]  # fmt: skip
    for repo in ("dagcheck", "tidy-vectors"):
        root = REPOS_DIR / repo
        parts = [(root / "README.md").read_text(encoding="utf-8")]
        parts += [
            f"### docs/{f.name}\n\n{f.read_text(encoding='utf-8')}"
            for f in sorted((root / "docs").glob("*.md"))
        ]
        docs.append(
            MartDocument(
                document_id=f"github/{repo}", author=AUTHOR.name, platform="github",
                document_kind="repository", title=repo, url=f"https://github.invalid/{repo}",
                published_at=datetime(2024, 6, 1, tzinfo=UTC), language="en",
                body="\n\n".join(parts), clean_hash="",
            )
        )  # fmt: skip
    return docs


def repeated(docs: list[MartDocument], copies: int) -> list[MartDocument]:
    """`copies` of the corpus under distinct document ids (same texts, so the same work)."""
    out = []
    for n in range(copies):
        for d in docs:
            doc_id = f"{d.document_id}#{n}"
            digest = hashlib.sha256(f"{d.title}\n{d.body}".encode()).hexdigest()
            out.append(d.model_copy(update={"document_id": doc_id, "clean_hash": digest}))
    return out


def load_marts(conn: psycopg.Connection, docs: list[MartDocument]) -> None:
    conn.execute(MARTS_DDL)
    columns = list(MartDocument.model_fields)
    with conn.cursor().copy(
        sql.SQL("copy marts.documents ({}) from stdin").format(
            sql.SQL(", ").join(map(sql.Identifier, columns))
        )
    ) as copy:
        for d in docs:
            copy.write_row([getattr(d, c) for c in columns])


def time_encode(embedder: Embedder, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    """Seconds for one `encode` of `texts`, and the vectors."""
    began = time.perf_counter()
    vecs = embedder.encode(texts, batch_size=batch_size)
    return time.perf_counter() - began, vecs


@dataclass
class PipelineRun:
    seconds: float
    result: FeatureSyncResult
    again: FeatureSyncResult  # a second sync right after, with nothing new


def time_pipeline(
    settings: Settings,
    docs: list[MartDocument],
    embedder: Embedder,
    budget: ChunkBudget,
    batch_size: int,
) -> PipelineRun:
    """One timed `sync_features` from an empty index, in a scratch database of its own, and an
    untimed second one that should find nothing to do."""
    with scratch_database(settings.require("warehouse_dsn"), "bench") as dsn:
        scratch = settings.model_copy(update={"warehouse_dsn": dsn})
        with warehouse_connection(scratch, autocommit=True) as conn:
            load_marts(conn, docs)
        began = time.perf_counter()
        result = sync_features(
            scratch, embedder=embedder, budget=budget, embed_batch=batch_size, progress=False
        )
        seconds = time.perf_counter() - began
        again = sync_features(scratch, embedder=embedder, budget=budget, progress=False)
        return PipelineRun(seconds, result, again)


def median_run(runs: list[PipelineRun]) -> PipelineRun:
    """The run whose time is nearest the median (for its stage breakdown)."""
    middle = statistics.median(r.seconds for r in runs)
    return min(runs, key=lambda r: abs(r.seconds - middle))


def stages(run: PipelineRun) -> str:
    t = run.result.timings
    return (
        f"{run.seconds:.1f} s: chunk {t.get('chunk', 0):.1f}, embed {t.get('embed', 0):.1f}, "
        f"write {t.get('write', 0):.1f}, indexes {t.get('index', 0):.1f}"
    )


def random_rows(n: int, dim: int, model: str) -> list[ChunkRow]:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    text = "Ship the boring version first: a pipeline without a rerun story is a rumour. " * 4
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        ChunkRow(f"c{i}", f"d{i // 8}", i % 8, AUTHOR.name, "blog", "article", now,
                 f"https://x.invalid/{i // 8}", "A title", None, text, 80, f"h{i}", model, vecs[i])
        for i in range(n)
    ]  # fmt: skip


def copy_benchmark(settings: Settings, dimension: int, n: int) -> None:
    """Binary COPY and `write_chunks` of `n` precomputed rows into a scratch chunk table."""
    with (
        scratch_database(settings.require("warehouse_dsn"), "bench") as dsn,
        warehouse_connection(
            settings.model_copy(update={"warehouse_dsn": dsn}), autocommit=True
        ) as conn,
    ):
        version = vectors.ensure_index_version(conn, "bench/copy", dimension, "bench")
        rows = random_rows(n, dimension, "bench/copy")
        began = time.perf_counter()
        with conn.transaction():
            vectors.copy_chunks(conn, version.table, rows)
        copy_s = time.perf_counter() - began
        conn.execute(sql.SQL("truncate {t}").format(t=version.table))
        began = time.perf_counter()
        written = vectors.write_chunks(conn, version, rows)
        upsert_s = time.perf_counter() - began
        began = time.perf_counter()
        rewritten = vectors.write_chunks(conn, version, rows)
        reload_s = time.perf_counter() - began
        assert (written, rewritten) == (len(rows), 0)
    print(f"binary COPY of {n} rows ({dimension}-d vectors, no HNSW yet)")
    print(f"  COPY into the chunk table {n / copy_s:10.0f} rows/s  ({copy_s:.2f} s)")
    print(f"  write_chunks (stage+upsert){n / upsert_s:9.0f} rows/s  ({upsert_s:.2f} s)")
    print(f"  write_chunks, all present {n / reload_s:10.0f} rows/s  ({reload_s:.2f} s, "
          f"0 rows written)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies the chunk and row counts"
    )
    parser.add_argument("--min-chunks", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--copy-rows", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each path")
    args = parser.parse_args()

    settings = load_settings()
    fast = Embedder.from_settings(settings)
    old = Embedder(fast.spec, fast.device, precision="fp32")
    paths = {"fp32": old, "fast": fast}
    print(f"model {fast.model_name} ({fast.dimension}-d), loading…", flush=True)
    for embedder in paths.values():
        embedder.encode(["warm up the model and the tokenizer"] * args.batch_size)
    print(f"fp32 = the old path; fast = precision {fast.precision!r} → {fast.compute_precision}")
    budget = ChunkBudget(max_tokens=fast.max_seq_length)

    base = sample_corpus()
    per_copy = sum(
        len(chunk_document(d, fast.tokenizer, budget, model_name=fast.model_name)) for d in base
    )
    wanted = max(1, round(args.min_chunks * args.scale))
    docs = repeated(base, max(1, math.ceil(wanted / per_copy)))
    texts = [
        c.embedding_text
        for d in docs
        for c in chunk_document(d, fast.tokenizer, budget, model_name=fast.model_name)
    ]
    copies = len(docs) // len(base)
    print(f"corpus: {len(docs)} documents, {len(texts)} chunks "
          f"({copies} copies of {len(base)} documents, {per_copy} chunks each)")  # fmt: skip

    bare: dict[str, list[float]] = {k: [] for k in paths}
    runs: dict[str, list[PipelineRun]] = {k: [] for k in paths}
    vecs: dict[str, np.ndarray] = {}
    for _ in range(max(1, args.repeats)):
        for key, embedder in paths.items():
            seconds, vecs[key] = time_encode(embedder, texts, args.batch_size)
            bare[key].append(seconds)
            runs[key].append(time_pipeline(settings, docs, embedder, budget, args.batch_size))
            written = runs[key][-1].result.chunks_written
            assert written == len(texts), (key, written, len(texts))
            rate = len(texts) / runs[key][-1].seconds
            print(f"  {key:5} bare {len(texts) / seconds:6.1f} chunks/s, "
                  f"pipeline {rate:6.1f} chunks/s", flush=True)  # fmt: skip
    cosine = np.einsum("ij,ij->i", vecs["fast"], vecs["fp32"])

    n = len(texts)
    bare_rate = {k: n / statistics.median(v) for k, v in bare.items()}
    pipe = {k: median_run(v) for k, v in runs.items()}
    pipe_rate = {k: n / statistics.median(r.seconds for r in v) for k, v in runs.items()}
    print()
    print(f"embedding throughput on {n} chunks, batch size {args.batch_size}, "
          f"medians of {args.repeats} alternating runs (chunks/s)")  # fmt: skip
    print(f"  {'':30}{'fp32 (old)':>12}{'fast':>10}{'fast/fp32':>11}")
    print(f"  {'bare model encode':30}{bare_rate['fp32']:12.1f}{bare_rate['fast']:10.1f}"
          f"{bare_rate['fast'] / bare_rate['fp32']:11.2f}")  # fmt: skip
    print(f"  {'pipeline chunk+embed+load':30}{pipe_rate['fp32']:12.1f}{pipe_rate['fast']:10.1f}"
          f"{pipe_rate['fast'] / pipe_rate['fp32']:11.2f}   (aim >= 2)")  # fmt: skip
    print(f"  {'ratio pipeline / bare':30}{pipe_rate['fp32'] / bare_rate['fp32']:12.2f}"
          f"{pipe_rate['fast'] / bare_rate['fast']:10.2f}")  # fmt: skip
    for key in paths:
        print(f"  pipeline {key:5} {stages(pipe[key])}  "
              f"(runs: {', '.join(f'{n / r.seconds:.1f}' for r in runs[key])})")  # fmt: skip
    print(f"  cosine fast vs fp32 per chunk: min {cosine.min():.6f}, mean {cosine.mean():.6f}")

    again = pipe["fast"].again
    print(f"  re-run with nothing new  {again.seconds:8.2f} s      "
          f"(embedded {again.chunks_embedded}, written {again.chunks_written})")  # fmt: skip
    print()
    copy_benchmark(settings, fast.dimension, max(1, round(args.copy_rows * args.scale)))


if __name__ == "__main__":
    main()
