"""Feature pipeline throughput: chunk + embed + load against the bare embedding model, and COPY.

On the sample author's corpus (its writing and repositories, repeated under new document ids
until there are at least `--min-chunks` chunks), in a scratch database created on the stack's
warehouse (`WAREHOUSE_DSN`) and dropped afterwards:

- bare model: `Embedder.encode` over exactly the texts the pipeline embeds (context line +
  content), same batch size, timed before and after the pipeline run (their mean is the base);
- pipeline: `sync_features` from an empty index to an active one: read the marts, chunk, embed,
  binary COPY, build the HNSW and GIN indexes, ANALYZE, activate;
- COPY: `--copy-rows` precomputed rows (random unit vectors of the model's dimension) by binary
  COPY straight into a chunk table, and through `write_chunks` (COPY to a stage + upsert).

The model is loaded and warmed up before anything is timed.

    set -a; . .twin/stack.env; set +a
    python benchmarks/embed_load.py [--min-chunks 1500] [--batch-size 64] [--copy-rows 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
from psycopg import sql

from sample_author import AUTHOR, load_documents
from sample_author.content import REPOS_DIR
from twin.features.chunk import ChunkBudget, MartDocument, chunk_document
from twin.features.embed import Embedder
from twin.features.pipeline import sync_features
from twin.settings import load_settings
from twin.store import vectors
from twin.store.vectors import ChunkRow
from twin.store.warehouse import scratch_database, warehouse_connection

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


def time_encode(embedder: Embedder, texts: list[str], batch_size: int) -> float:
    began = time.perf_counter()
    embedder.encode(texts, batch_size=batch_size)
    return time.perf_counter() - began


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-chunks", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--copy-rows", type=int, default=20000)
    args = parser.parse_args()

    settings = load_settings()
    embedder = Embedder.get()
    print(f"model {embedder.model_name} ({embedder.dimension}-d), loading…", flush=True)
    embedder.encode(["warm up the model and the tokenizer"] * args.batch_size)
    budget = ChunkBudget(max_tokens=embedder.max_seq_length)

    base = sample_corpus()
    per_copy = sum(
        len(chunk_document(d, embedder.tokenizer, budget, model_name=embedder.model_name))
        for d in base
    )
    docs = repeated(base, max(1, math.ceil(args.min_chunks / per_copy)))
    texts = [
        c.embedding_text
        for d in docs
        for c in chunk_document(d, embedder.tokenizer, budget, model_name=embedder.model_name)
    ]
    copies = len(docs) // len(base)
    print(f"corpus: {len(docs)} documents, {len(texts)} chunks "
          f"({copies} copies of {len(base)} documents, {per_copy} chunks each)")  # fmt: skip

    with scratch_database(settings.require("warehouse_dsn"), "bench") as dsn:
        scratch = settings.model_copy(update={"warehouse_dsn": dsn})
        with warehouse_connection(scratch, autocommit=True) as conn:
            load_marts(conn, docs)

        bare_before = time_encode(embedder, texts, args.batch_size)
        began = time.perf_counter()
        result = sync_features(
            scratch, embedder=embedder, budget=budget, embed_batch=args.batch_size, progress=False
        )
        pipeline_s = time.perf_counter() - began
        bare_after = time_encode(embedder, texts, args.batch_size)
        assert result.chunks_written == len(texts), (result.chunks_written, len(texts))
        again = sync_features(scratch, embedder=embedder, budget=budget, progress=False)

        with warehouse_connection(scratch, autocommit=True) as conn:
            version = vectors.ensure_index_version(conn, "bench/copy", embedder.dimension, "bench")
            rows = random_rows(args.copy_rows, embedder.dimension, "bench/copy")
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

    n = len(texts)
    bare_rate = n / ((bare_before + bare_after) / 2)
    pipe_rate = n / pipeline_s
    t = result.timings
    print()
    print(f"embedding throughput on {n} chunks, batch size {args.batch_size}")
    print(f"  bare model encode        {bare_rate:8.1f} chunks/s   "
          f"(runs: {n / bare_before:.1f} before, {n / bare_after:.1f} after)")  # fmt: skip
    print(f"  pipeline chunk+embed+load{pipe_rate:8.1f} chunks/s   "
          f"({pipeline_s:.1f} s: chunk {t.get('chunk', 0):.1f}, embed {t.get('embed', 0):.1f}, "
          f"write {t.get('write', 0):.1f}, indexes {t.get('index', 0):.1f})")  # fmt: skip
    print(f"  ratio pipeline / bare    {pipe_rate / bare_rate:8.2f}   (aim >= 0.90)")
    print(f"  re-run with nothing new  {again.seconds:8.2f} s      "
          f"(embedded {again.chunks_embedded}, written {again.chunks_written})")  # fmt: skip
    print()
    print(f"binary COPY of {len(rows)} rows ({embedder.dimension}-d vectors, no HNSW yet)")
    print(f"  COPY into the chunk table {len(rows) / copy_s:10.0f} rows/s  ({copy_s:.2f} s)")
    print(f"  write_chunks (stage+upsert){len(rows) / upsert_s:9.0f} rows/s  ({upsert_s:.2f} s)")
    print(f"  write_chunks, all present {len(rows) / reload_s:10.0f} rows/s  ({reload_s:.2f} s, "
          f"0 rows written)")  # fmt: skip


if __name__ == "__main__":
    main()
