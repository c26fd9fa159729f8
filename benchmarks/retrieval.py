"""Hybrid retrieval at 100,000 chunks: latency with filters, and HNSW recall against exact search.

A scratch database (dropped afterwards unless --keep) gets an index version built by the feature
store's own code (`twin.store.vectors`: the same table, b-tree filter index, GIN on the generated
tsvector, HNSW m=16, ef_construction=64, inline vector storage, read through `vectors.chunks`),
filled by binary COPY with synthetic chunks:

- 384-d unit vectors around 1,000 cluster centres (each chunk: its centre plus noise), so nearest
  neighbours are a real ranking problem within a cluster rather than random;
- authors with a Zipf-like share of the rows (the largest about a quarter), platforms and kinds in
  realistic proportions, publication dates over six years;
- text built from per-cluster topic words plus common filler words, so full-text search has both
  rare and frequent terms.

It prints the build times, then:

1. exact vs HNSW recall@10 and latency at ef_search 10, 20, 40, 80, 160 (no filter);
2. filtered dense search (author + platform) at ef_search 40: how often the post-filtered HNSW scan
   returns fewer than k rows, and the latency and recall of each path (HNSW, HNSW oversampled at
   ef_search 400, exact over the filtered rows, and the planner's own choice);
3. end-to-end `Retriever.search` (hybrid + MMR rerank, k=10, author + platform filters) p50/p95,
   with the dense path each query took: the full-text side after the dense one on one connection
   (the baseline) and beside it on a second connection, alternating query by query. Query
   embedding is precomputed (the model's own cost is reported separately when the packaged
   model is available), so this is the database work.

    python benchmarks/retrieval.py [--rows 100000] [--queries 200] [--scale 1] [--keep]
                                   [--reuse DATABASE] [--write-order pipeline|document-id]

`--scale` multiplies `--rows` (10 for a million chunks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from twin.rag.query import SearchFilters
from twin.rag.rerank import MMRReranker
from twin.rag.retrieve import Retriever
from twin.store.vectors import (
    ChunkRow,
    IndexVersion,
    activate,
    active_version,
    copy_chunks,
    ensure_index_version,
    ensure_search_indexes,
)
from twin.store.warehouse import scratch_database

# Run as a script, this file's folder comes first on sys.path, and benchmarks/datasets.py would
# shadow the `datasets` package that sentence-transformers imports (the query-embedding figure).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

DIM = 384
CLUSTERS = 1000
NOISE = 0.045  # per-dimension noise around a centre: cosine to the centre of about 0.6
PLATFORMS = {"linkedin": 0.30, "medium": 0.25, "blog": 0.20, "substack": 0.15, "github": 0.10}
KINDS = {
    "linkedin": (("post", 0.85), ("article", 0.15)),
    "medium": (("article", 1.0),),
    "blog": (("article", 1.0),),
    "substack": (("post", 1.0),),
    "github": (("repository", 1.0),),
}
AUTHORS = 50
EF_SEARCH = (10, 20, 40, 80, 160)
K = 10


def pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct pronounceable nonsense words (no English stop words among them)."""
    onsets = [*"bdfgklmnprstvz", "br", "kl", "st", "tr", "sk", "gr"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    words: set[str] = set()
    while len(words) < n:
        syllables = rng.integers(2, 4)
        words.add(
            "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(syllables))
            + rng.choice(["", "n", "r", "s", "l"])
        )
    return sorted(words)


class Corpus:
    """Synthetic chunks: vectors, metadata and text, reproducible from a seed."""

    def __init__(self, rows: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.rows = rows
        centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.cluster = rng.integers(0, CLUSTERS, size=rows)
        vectors = self.centres[self.cluster] + rng.normal(scale=NOISE, size=(rows, DIM)).astype(
            np.float32
        )
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        share = 1.0 / np.arange(1, AUTHORS + 1) ** 1.1
        self.author_names = [f"Author {i:02d}" for i in range(AUTHORS)]
        self.author = rng.choice(AUTHORS, size=rows, p=share / share.sum())
        names = list(PLATFORMS)
        self.platform = rng.choice(len(names), size=rows, p=list(PLATFORMS.values()))
        self.platform_names = names
        start = datetime(2019, 1, 1, tzinfo=UTC)
        self.published = [start + timedelta(days=int(d)) for d in rng.integers(0, 6 * 365, rows)]

        vocabulary = pseudo_words(rng, 6000)
        self.fillers = vocabulary[:300]
        self.topics = [vocabulary[300 + i * 5 : 300 + i * 5 + 12] for i in range(CLUSTERS)]
        filler_p = 1.0 / np.arange(1, len(self.fillers) + 1)
        self.filler_p = filler_p / filler_p.sum()

    def kind(self, platform: str) -> str:
        options = KINDS[platform]
        return str(self.rng.choice([k for k, _ in options], p=[p for _, p in options]))

    def text(self, cluster: int, words: int) -> str:
        topic = self.rng.choice(self.topics[cluster], size=int(words * 0.3))
        filler = self.rng.choice(self.fillers, size=words - len(topic), p=self.filler_p)
        mixed = np.concatenate([topic, filler])
        self.rng.shuffle(mixed)
        return " ".join(mixed)

    def row(self, i: int) -> tuple:
        platform = self.platform_names[self.platform[i]]
        cluster = int(self.cluster[i])
        content = self.text(cluster, int(self.rng.integers(60, 140)))
        return (
            f"c{i:07d}",
            f"d{i // 4:06d}",
            i % 4,
            self.author_names[self.author[i]],
            platform,
            self.kind(platform),
            self.published[i],
            f"https://example.invalid/{platform}/{i // 4}",
            " ".join(self.topics[cluster][:3]),
            None,  # section
            content,
            len(content.split()),
            f"{hash(content) & 0xFFFFFFFFFFFF:012x}",
            "synthetic-384",
            self.vectors[i],
        )


@contextmanager
def bench_database(admin_dsn: str, *, reuse: str | None, keep: bool) -> Iterator[str]:
    """The database to measure: `reuse` as it is, a new kept one, or a scratch one (dropped)."""
    if reuse:
        yield urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{reuse}"))
        return
    if not keep:
        with scratch_database(admin_dsn, "bench_retrieval") as dsn:
            yield dsn
        return
    name = f"bench_retrieval_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
    print(f"kept database {name} (measure it again with --reuse {name})")
    yield dsn


def timed(label: str, fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - start
    print(f"  {label:<44} {seconds:8.1f} s", flush=True)
    return seconds


def build_index(conn: psycopg.Connection, corpus: Corpus, write_order: str) -> IndexVersion:
    """The corpus loaded and indexed exactly as the feature pipeline does it, then activated.

    `write_order` "pipeline" writes the rows as the pipeline does (by author and platform,
    `twin.features.pipeline._in_write_order`); "document-id" as it did before (by document id,
    a hash: no order of authors). The rows are the same either way.
    """
    register_vector(conn)
    version = ensure_index_version(conn, "synthetic-384", DIM, "bench")

    rows: list[ChunkRow] = []

    def make() -> None:
        rows.extend(ChunkRow(*corpus.row(i)) for i in range(corpus.rows))  # the same texts
        if write_order == "pipeline":
            rows.sort(key=lambda r: (r.author, r.platform, r.document_id, r.chunk_index))

    timed("synthetic rows made (not part of the build)", make)
    timed(
        f"binary COPY, {write_order} order (with generated tsvector)",
        copy_chunks,
        conn,
        version.table,
        rows,
    )
    rows.clear()
    conn.execute("set max_parallel_maintenance_workers = 1")
    timed("HNSW m=16 ef_construction=64 + GIN on tsv", ensure_search_indexes, conn, version)
    timed("analyze", conn.execute, sql.SQL("analyze {}").format(version.table))
    activate(conn, version)
    return version


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed_ids(
    conn: psycopg.Connection,
    query: str,
    params: dict,
    settings: dict[str, str],
    *,
    hnsw_only: bool = False,
) -> tuple[list, float]:
    """The ids a query returns under `settings`, and the query's own time in ms.

    `hnsw_only` hides the b-tree filter index for the query (dropped in a transaction that is
    rolled back), so a filtered query cannot avoid the HNSW index by a plain index scan.
    """
    with conn.transaction(force_rollback=True):
        if hnsw_only:
            conn.execute(sql.SQL("drop index {}").format(filter_index(conn)))
        for key, value in settings.items():
            conn.execute("select set_config(%s, %s, true)", (key, value))
        start = time.perf_counter()
        # never prepared: a cached generic plan would ignore the settings above
        found = [r[0] for r in conn.execute(query, params, prepare=False).fetchall()]
        return found, (time.perf_counter() - start) * 1000


def filter_index(conn: psycopg.Connection) -> sql.Identifier:
    """The active version's b-tree filter index (author, platform, kind, published_at)."""
    version = active_version(conn)
    return sql.Identifier("vectors", f"{version.table_name}_filter")


def recall(found: Sequence, truth: Sequence) -> float:
    return len(set(found) & set(truth)) / max(1, len(truth))


def bench_unfiltered(conn: psycopg.Connection, queries: np.ndarray) -> None:
    print(f"\n1. HNSW vs exact, no filter, top-{K} over {len(queries)} queries")
    query = f"select chunk_id from vectors.chunks order by embedding <=> %(q)s limit {K}"
    exact, exact_ms = [], []
    for q in queries:
        found, ms = timed_ids(conn, query, {"q": q}, {"enable_indexscan": "off"})
        exact.append(found)
        exact_ms.append(ms)
    print(f"   {'search':<22} {'recall@10':>9} {'p50 ms':>8} {'p95 ms':>8}")
    print(
        f"   {'exact (no index)':<22} {1.0:>9.3f} {percentile(exact_ms, 50):>8.1f} "
        f"{percentile(exact_ms, 95):>8.1f}"
    )
    for ef in EF_SEARCH:
        recalls, latency = [], []
        forced = {"hnsw.ef_search": str(ef), "enable_seqscan": "off"}  # the index, not a scan
        for q, truth in zip(queries, exact, strict=True):
            found, ms = timed_ids(conn, query, {"q": q}, forced)
            recalls.append(recall(found, truth))
            latency.append(ms)
        print(
            f"   {f'HNSW ef_search={ef}':<22} {statistics.mean(recalls):>9.3f} "
            f"{percentile(latency, 50):>8.1f} {percentile(latency, 95):>8.1f}"
        )


def bench_filtered(conn: psycopg.Connection, queries: np.ndarray, filters: list) -> list[list]:
    print(f"\n2. Dense top-{K} with author + platform filters, {len(queries)} queries")
    query = (
        "select chunk_id from vectors.chunks where author = %(a)s and platform = %(p)s "
        f"order by embedding <=> %(q)s limit {K}"
    )
    selectivity = []
    for f in filters:
        row = conn.execute(
            "select count(*) from vectors.chunks where author = %s and platform = %s", f
        ).fetchone()
        selectivity.append(row[0])
    print(
        f"   rows passing the filter: median {statistics.median(selectivity):.0f}, "
        f"min {min(selectivity)}, max {max(selectivity)}"
    )
    forced = {"enable_bitmapscan": "off", "enable_seqscan": "off"}
    paths = {
        "HNSW only, ef_search=40": ({"hnsw.ef_search": "40", **forced}, True),
        "HNSW only, ef_search=400": ({"hnsw.ef_search": "400", **forced}, True),
        "HNSW only, ef_search=1000": ({"hnsw.ef_search": "1000", **forced}, True),
        "exact over filtered rows": ({"enable_indexscan": "off"}, False),
        "planner's choice, ef=40": ({"hnsw.ef_search": "40"}, False),
    }
    truth = []
    for q, (a, p) in zip(queries, filters, strict=True):
        truth.append(
            timed_ids(conn, query, {"q": q, "a": a, "p": p}, {"enable_indexscan": "off"})[0]
        )
    print(f"   {'path':<26} {'short':>6} {'recall@10':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for label, (settings, hnsw_only) in paths.items():
        short, recalls, latency = 0, [], []
        for q, (a, p), exact in zip(queries, filters, truth, strict=True):
            params = {"q": q, "a": a, "p": p}
            found, ms = timed_ids(conn, query, params, settings, hnsw_only=hnsw_only)
            short += len(found) < min(K, len(exact))
            recalls.append(recall(found, exact))
            latency.append(ms)
        print(
            f"   {label:<26} {short:>6} {statistics.mean(recalls):>9.3f} "
            f"{percentile(latency, 50):>8.1f} {percentile(latency, 95):>8.1f}"
        )
    print("   (short: queries that got fewer than k rows although k rows pass the filter)")
    return truth


class PrecomputedEncoder:
    """Hands back the vector prepared for the current question (the model is not timed here)."""

    def __init__(self) -> None:
        self.vector = np.zeros(DIM, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vector for _ in texts])


def bench_hybrid(
    conn: psycopg.Connection,
    text_conn: psycopg.Connection,
    corpus: Corpus,
    queries: np.ndarray,
    filters: list,
    texts: list,
    truth: list[list],
) -> None:
    print(
        f"\n3. Retriever.search: hybrid + MMR rerank, k={K}, author + platform filters "
        "(after 20 warm-up queries), full text after dense on one connection (baseline) and "
        "beside it on a second, alternating query by query (each first on every other query)"
    )
    encoder = PrecomputedEncoder()
    # MMR, as the figures in twin/rag/README.md were measured (the default embeds sentence
    # windows, which this encoder of prepared vectors cannot)
    options = {"known_authors": corpus.author_names, "reranker": MMRReranker()}
    one = Retriever(conn, encoder, **options)
    two = Retriever(conn, encoder, text_conn=text_conn, **options)
    for text, vector, (author, platform) in list(zip(texts, queries, filters, strict=True))[:20]:
        encoder.vector = vector  # warm-up: the first queries read pages no query touched yet
        flt = SearchFilters(author=author, platforms=[platform])
        one.search(text, K, filters=flt, self_query=False)
        two.search(text, K, filters=flt, self_query=False)
    runs: dict[str, list] = {"one connection": [], "two connections": []}
    for i, (text, vector, (author, platform)) in enumerate(
        zip(texts, queries, filters, strict=True)
    ):
        flt = SearchFilters(author=author, platforms=[platform])
        encoder.vector = vector
        pair = [("one connection", one), ("two connections", two)]
        # each goes first on every other query: the second finds the pages the first read
        for name, retriever in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            passages = retriever.search(text, K, filters=flt, self_query=False)
            elapsed = (time.perf_counter() - start) * 1000
            runs[name].append((elapsed, retriever.last_trace, passages))
    p95 = {}
    for name, measured in runs.items():
        total = [ms for ms, _, _ in measured]
        p95[name] = percentile(total, 95)
        print(f"   {name}: end to end p50 {percentile(total, 50):.1f} ms, p95 {p95[name]:.1f} ms")
        for stage in ("dense", "fulltext", "fuse_rerank"):
            values = [t.timings_ms.get(stage, 0.0) for _, t, _ in measured]
            print(
                f"     {stage:<12} p50 {percentile(values, 50):6.1f} ms"
                f"   p95 {percentile(values, 95):6.1f} ms"
            )
    print(f"   p95 two connections / one: {p95['two connections'] / p95['one connection']:.2f}")
    same = sum(
        [p.chunk_id for p in a] == [p.chunk_id for p in b]
        for (_, _, a), (_, _, b) in zip(*runs.values(), strict=True)
    )
    print(f"   identical results both ways: {same} of {len(texts)} queries")
    measured = runs["two connections"]
    paths = Counter(t.dense_path for _, t, _ in measured)
    print("   dense path taken: " + ", ".join(f"{k} {v}" for k, v in sorted(paths.items())))
    ok = all(
        {p.platform for p in passages} <= {platform}
        for (_, _, passages), (_, platform) in zip(measured, filters, strict=True)
    )
    print(f"   every result matched its filter: {ok}")
    short = sum(1 for _, t, _ in measured if t.returned < K)
    print(f"   queries returning fewer than {K} passages: {short}")
    by_path: dict[str, list[float]] = {}
    for vector, (author, platform), exact in zip(queries, filters, truth, strict=True):
        flt = SearchFilters(author=author, platforms=[platform])
        found, path = two.dense_search(vector, 4 * K, flt, min_rows=K)
        by_path.setdefault(path, []).append(recall([p.chunk_id for p in found[:K]], exact))
    print(
        "   its dense top-10 vs exact search under the same filter: recall@10 "
        + ", ".join(f"{path} {statistics.mean(v):.3f} ({len(v)})" for path, v in by_path.items())
        + f", all {statistics.mean(x for v in by_path.values() for x in v):.3f}"
    )

    unfiltered = []
    for text, vector in zip(texts, queries, strict=True):
        encoder.vector = vector
        start = time.perf_counter()
        two.search(text, K, self_query=False)
        unfiltered.append((time.perf_counter() - start) * 1000)
    print(
        f"   without filters (two connections): p50 {percentile(unfiltered, 50):.1f} ms, "
        f"p95 {percentile(unfiltered, 95):.1f} ms"
    )


def bench_query_embedding(texts: list[str]) -> None:
    try:
        from twin.features.embed import Embedder

        embedder = Embedder.get()
        embedder.encode(["warm up"])
    except Exception as err:  # the model is optional for the database figures
        print(f"\n(query embedding not measured: {err})")
        return
    latency = []
    for text in texts[:50]:
        start = time.perf_counter()
        embedder.encode([text])
        latency.append((time.perf_counter() - start) * 1000)
    print(
        f"\nquery embedding ({embedder.model_name}, CPU, one question): "
        f"p50 {percentile(latency, 50):.1f} ms, p95 {percentile(latency, 95):.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dsn", default=os.environ.get("WAREHOUSE_DSN"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="measure a database an earlier --keep run left"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --rows")
    parser.add_argument(
        "--write-order",
        choices=("pipeline", "document-id"),
        default="pipeline",
        help="row order of the load: the feature pipeline's (author, platform) or by document id",
    )
    args = parser.parse_args(argv)
    args.rows = max(1, round(args.rows * args.scale))
    if not args.dsn:
        print("WAREHOUSE_DSN is not set: run `twin stack up` and source .twin/stack.env")
        return 2

    print(f"{args.rows:,} chunks, {DIM}-d, {CLUSTERS} clusters (the feature store's schema)")
    with (
        bench_database(args.dsn, reuse=args.reuse, keep=args.keep) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
        psycopg.connect(dsn, autocommit=True) as text_conn,
    ):
        corpus = Corpus(args.rows)  # the same seed: the same chunks and queries on --reuse
        if not args.reuse:
            build_index(conn, corpus, args.write_order)
        register_vector(conn)
        size = conn.execute(
            "select pg_size_pretty(pg_total_relation_size(%s::regclass))",
            (f"vectors.{active_version(conn).table_name}",),
        ).fetchone()[0]
        print(f"  table + indexes: {size}")

        rng = np.random.default_rng(11)
        targets = rng.integers(0, args.rows, size=args.queries)
        noise = rng.normal(scale=NOISE, size=(args.queries, DIM)).astype(np.float32)
        queries = corpus.centres[corpus.cluster[targets]] + noise
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        filters = [
            (corpus.author_names[corpus.author[t]], corpus.platform_names[corpus.platform[t]])
            for t in targets
        ]
        texts = [
            " ".join(rng.choice(corpus.topics[corpus.cluster[t]], 3))
            + " " + " ".join(rng.choice(corpus.fillers[:50], 2))
            for t in targets
        ]  # fmt: skip

        bench_unfiltered(conn, queries)
        truth = bench_filtered(conn, queries, filters)
        bench_hybrid(conn, text_conn, corpus, queries, filters, texts, truth)
    bench_query_embedding(texts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
