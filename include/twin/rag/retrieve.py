"""Hybrid retrieval over `vectors.chunks`: dense ANN and full-text, fused, deduplicated, reranked.

One `Retriever.search` call:
1. reads constraints out of the question (`twin.rag.query.parse_query`), merged with explicit
   filters; the filters become parameterised SQL WHERE clauses on both searches;
2. embeds the remaining text (and its expansions when asked);
3. fetches 4 x k candidates from each side: pgvector's HNSW index (`order by embedding <=> q`,
   with `hnsw.ef_search` set for the transaction) and full-text search (`websearch_to_tsquery`
   over the question's words, chunks with more distinct query terms first, then `ts_rank_cd`;
   in hybrid mode a full-text candidate must contain at least two of the terms);
4. fuses the rankings by reciprocal rank fusion, drops duplicate and near-duplicate chunks, and
   reranks down to k passages (by default the best 20 candidates re-scored by their sentence
   window closest to the question, with the same embedder: `twin.rag.rerank.WindowReranker`).

pgvector 0.6 filters HNSW results after the index scan, so a selective filter can leave fewer than
the requested rows: the dense search scans the filtered rows exactly when the planner expects few
of them, raises `hnsw.ef_search` in proportion to the filter's selectivity otherwise, and falls
back to the exact scan if the index still returned too few (the trace records which path ran).

Given a second connection (`text_conn`, as `open_retriever` and the serving model open one), the
full-text side runs on it in a thread while the question is embedded and the dense side runs, so
a hybrid search takes about the longer of the two rather than their sum (measured by
`benchmarks/retrieval.py`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import psycopg
from cachetools import LRUCache
from pgvector.psycopg import register_vector
from psycopg import sql

from twin.rag.passages import Passage, SearchTrace, TextEncoder, passage_from_row
from twin.rag.query import (
    ParsedQuery,
    QueryExtractor,
    SearchFilters,
    expand_query,
    parse_query,
)
from twin.rag.rerank import (
    DUPLICATE_SIMILARITY,
    RRF_K,
    Reranker,
    default_reranker,
    drop_near_duplicates,
    reciprocal_rank_fusion,
)
from twin.rag.search_sql import (
    MAX_TERM_FREQUENCY,
    TERM_STATS_SQL,
    filter_clause,
    is_websearch_syntax,
    match_tsquery,
    select_terms,
    tsquery_term,
)

if TYPE_CHECKING:
    from twin.settings import Settings

SearchMode = Literal["hybrid", "dense", "fulltext"]
CHUNKS_TABLE = ("vectors", "chunks")
CANDIDATE_FACTOR = 4
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
# Filters passing at most this many chunks are searched exactly: with vectors stored inline an
# exact scan of 10k filtered rows (p95 18 ms at 100k chunks) beats HNSW at the high ef_search a
# selective filter needs (p95 44 ms), and never returns fewer than k rows.
EXACT_MAX_ROWS = 10_000
QUERY_CACHE_SIZE = 1024  # question vectors a retriever keeps (1.5 MB at 384-d)
HYBRID_MIN_TERMS = 2  # distinct question terms a full-text candidate needs in hybrid mode
_COLUMNS = (
    "chunk_id",
    "document_id",
    "url",
    "title",
    "platform",
    "document_kind",
    "published_at",
    "content",
    "content_hash",
    "embedding",
)
_OPTIONAL_COLUMNS = ("section",)  # selected when the chunk table has them
_DENSE_PATHS = ("hnsw", "exact")  # a trace reports the most exhaustive path any variant took


class Retriever:
    """Hybrid search over a chunk table (default `vectors.chunks`) on one or two connections.

    `conn` is a psycopg 3 connection (autocommit or not); each search runs in its own transaction
    block so its `hnsw.ef_search` setting does not leak. `embedder` encodes texts to normalised
    vectors of the table's dimension. `text_conn`, a second connection to the same database, runs
    the full-text side of hybrid searches beside the dense side (without it they run one after
    the other on `conn`). A retriever serves one search at a time; the caller owns both
    connections (`close` closes them).
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        embedder: TextEncoder,
        *,
        reranker: Reranker | None = None,
        table: tuple[str, str] = CHUNKS_TABLE,
        known_authors: list[str] | None = None,
        query_extractor: QueryExtractor | None = None,
        candidate_factor: int = CANDIDATE_FACTOR,
        rrf_k: int = RRF_K,
        duplicate_similarity: float = DUPLICATE_SIMILARITY,
        exact_max_rows: int = EXACT_MAX_ROWS,
        hybrid_min_terms: int = HYBRID_MIN_TERMS,
        max_term_frequency: float = MAX_TERM_FREQUENCY,
        text_conn: psycopg.Connection | None = None,
    ) -> None:
        for connection in (conn, text_conn):
            if connection is not None:
                register_vector(connection)
        self.conn = conn
        self.text_conn = text_conn
        self._text_side: ThreadPoolExecutor | None = None
        self.embedder = embedder
        self.reranker = reranker or default_reranker(encoder=embedder)
        self.table = sql.Identifier(*table)
        self._known_authors = known_authors
        self.query_extractor = query_extractor
        self.candidate_factor = candidate_factor
        self.rrf_k = rrf_k
        self.duplicate_similarity = duplicate_similarity
        self.exact_max_rows = exact_max_rows
        self._total_rows: float | None = None
        self.hybrid_min_terms = hybrid_min_terms
        self.max_term_frequency = max_term_frequency
        self._term_frequencies: dict[str, float] | None = None
        self.last_trace = SearchTrace()
        self._table_name = table
        self._columns: tuple[str, ...] | None = None
        self._query_vectors: LRUCache[str, np.ndarray] = LRUCache(QUERY_CACHE_SIZE)

    # --- building blocks --------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns searches select: the contract's, plus optional ones the table has."""
        if self._columns is None:
            schema, name = self._table_name
            with self.conn.transaction():
                present = {
                    r[0]
                    for r in self.conn.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = %s and table_name = %s",
                        (schema, name),
                    )
                }
            missing = [c for c in (*_COLUMNS, "tsv") if c not in present]
            if missing:
                raise RuntimeError(
                    f"{schema}.{name} lacks {', '.join(missing)}: build the index first "
                    "(the twin_features DAG, or twin.features.pipeline.sync_features)"
                )
            self._columns = (*_COLUMNS, *(c for c in _OPTIONAL_COLUMNS if c in present))
        return self._columns

    @property
    def known_authors(self) -> list[str]:
        """Authors present in the table (read once), for recognising names in questions."""
        if self._known_authors is None:
            query = sql.SQL("select distinct author from {} where author is not null").format(
                self.table
            )
            with self.conn.transaction():
                self._known_authors = sorted(r[0] for r in self.conn.execute(query).fetchall())
        return self._known_authors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors for `texts`, one row each. A text this retriever embedded
        before is not encoded again (an evaluation asks each question in several modes, people
        repeat questions): the last `QUERY_CACHE_SIZE` texts' vectors are kept."""
        distinct = dict.fromkeys(texts)
        found = {t: self._query_vectors[t] for t in distinct if t in self._query_vectors}
        missing = [t for t in distinct if t not in found]
        if missing:
            vectors = np.asarray(self.embedder.encode(missing), dtype=np.float32)
            if vectors.ndim == 1:
                vectors = vectors[None, :]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            unit = vectors / np.where(norms == 0, 1.0, norms)
            for text, vector in zip(missing, unit, strict=True):
                found[text] = self._query_vectors[text] = vector
        # from this call's own vectors: more texts than the cache holds would evict some of them
        return np.stack([found[t] for t in texts])

    def parse(
        self, question: str, *, self_query: bool = True, now: datetime | None = None
    ) -> ParsedQuery:
        """`question` with the constraints it states read out as filters (`search`'s first step;
        `parsed.text` is what gets embedded)."""
        if not self_query:
            return ParsedQuery(text=question, original=question)
        return parse_query(question, self.known_authors, now=now, extractor=self.query_extractor)

    def dense_query(
        self, vector: np.ndarray, n: int, filters: SearchFilters | None = None
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The nearest-neighbour SQL (filters in its WHERE clause) and its parameters."""
        where, params = filter_clause(filters)
        query = sql.SQL(
            "select {columns}, embedding <=> %(q)s as distance from {table} where {where} "
            "order by embedding <=> %(q)s limit %(n)s"
        ).format(
            columns=sql.SQL(", ").join(map(sql.Identifier, self.columns)),
            table=self.table,
            where=where,
        )
        return query, {**params, "q": np.asarray(vector, dtype=np.float32), "n": n}

    @property
    def term_frequencies(self) -> dict[str, float]:
        """Share of chunks containing each common lexeme, from the planner's statistics (read once).

        ANALYZE keeps the most common elements of the `tsv` column with their frequencies; the
        statistics live on the table behind the `vectors.chunks` view. Empty before any ANALYZE.
        """
        if self._term_frequencies is None:
            conn = self._text
            relation = sql.Identifier(*self._table_name).as_string(conn)
            with conn.transaction():
                row = conn.execute(TERM_STATS_SQL, {"rel": relation}).fetchone()
            elems, freqs = row or (None, None)
            self._term_frequencies = dict(zip(elems or [], freqs or [], strict=False))
        return self._term_frequencies

    def lexemes(self, text: str) -> list[str]:
        """The distinct lexemes Postgres' english configuration makes of `text`."""
        conn = self._text
        with conn.transaction():
            row = conn.execute(
                "select tsvector_to_array(to_tsvector('english', %s))", (text,)
            ).fetchone()
        return list(row[0] or []) if row else []

    def text_query(
        self,
        text: str,
        n: int,
        filters: SearchFilters | None = None,
        *,
        min_terms: int = 1,
    ) -> tuple[sql.Composed, dict[str, Any]] | None:
        """The full-text SQL (filters in its WHERE clause) and its parameters; None: no terms.

        A chunk matches when it contains at least `min_terms` (all, for shorter questions) of the
        question's informative terms (see `select_terms` and `match_tsquery`; a question in
        web-search syntax goes through `websearch_to_tsquery` as written). Matches are ordered by
        how many distinct terms they contain (coordination level), then by `ts_rank_cd`.
        """
        lexemes = self.lexemes(text)
        if not lexemes:
            return None
        where, params = filter_clause(filters)
        if is_websearch_syntax(text):
            terms, match = lexemes, sql.SQL("websearch_to_tsquery('english', %(text)s)")
            params["text"] = text
        else:
            terms, op = select_terms(lexemes, self.term_frequencies, self.max_term_frequency)
            match = sql.SQL("%(match)s::tsquery")
            params["match"] = match_tsquery(terms, op, min_terms)
        query = sql.SQL(
            "with query as (select {match} as q, %(terms)s::tsquery[] as terms) "
            "select {columns}, m.matched, ts_rank_cd(c.tsv, query.q, 1) as rank "
            "from {table} as c cross join query cross join lateral ("
            "select count(*) as matched from unnest(query.terms) as t where c.tsv @@ t) as m "
            "where c.tsv @@ query.q and {where} "
            "and m.matched >= least(%(min_terms)s, cardinality(query.terms)) "
            "order by m.matched desc, rank desc, c.chunk_id limit %(n)s"
        ).format(
            match=match,
            columns=sql.SQL(", ").join(sql.Identifier("c", c) for c in self.columns),
            table=self.table,
            where=where,
        )
        params.update({"terms": [tsquery_term(t) for t in terms], "min_terms": min_terms, "n": n})
        return query, params

    def estimated_rows(self, filters: SearchFilters | None = None) -> float:
        """The planner's estimate of how many chunks pass `filters` (all chunks for None)."""
        where, params = filter_clause(filters)
        query = sql.SQL("explain (format json) select 1 from {table} where {where}").format(
            table=self.table, where=where
        )
        with self.conn.transaction():
            plan = self.conn.execute(query, params, prepare=False).fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return float(plan[0]["Plan"]["Plan Rows"])

    def dense_search(
        self,
        vector: np.ndarray,
        n: int,
        filters: SearchFilters | None = None,
        *,
        ef_search: int = 40,
        min_rows: int | None = None,
    ) -> tuple[list[Passage], str]:
        """Up to `n` nearest chunks under `filters`, and which path answered.

        pgvector 0.6 applies a WHERE clause after the HNSW scan, which stops after `ef_search`
        candidates: with a filter passing a share s of the chunks, about s * ef_search rows
        survive. So, by the planner's row estimate for the filter:
        - few rows (at most `exact_max_rows`): "exact", a scan of the filtered rows;
        - otherwise "hnsw" with `ef_search` raised to about 2 * n / s (at most 1000); when that
          still returns fewer than `min_rows` (default n) rows, the exact scan answers.
        Without filters the path is "hnsw" at `ef_search`.
        """
        query, params = self.dense_query(vector, n, filters)
        ef = max(ef_search, n)
        exact = False
        if filters is not None and not filters.is_empty:
            passing = self.estimated_rows(filters)
            if passing <= self.exact_max_rows:
                exact = True
            else:
                share = min(1.0, passing / max(1.0, self.total_rows))
                ef = max(ef, math.ceil(2 * n / share))
        path = "exact" if exact else "hnsw"
        # prepare=False: a cached generic plan would ignore the settings made here. Binary
        # results: vectors arrive as raw floats rather than text to parse.
        with self.conn.transaction():
            if exact:
                self.conn.execute("select set_config('enable_indexscan', 'off', true)")
            else:
                ef = min(MAX_EF_SEARCH, ef)
                self.conn.execute("select set_config('hnsw.ef_search', %s, true)", (str(ef),))
            rows = self.conn.execute(query, params, prepare=False, binary=True).fetchall()
            enough = n if min_rows is None else min(min_rows, n)
            if len(rows) < enough and not exact and filters and not filters.is_empty:
                self.conn.execute("select set_config('enable_indexscan', 'off', true)")
                rows = self.conn.execute(query, params, prepare=False, binary=True).fetchall()
                path = "exact"
        passages = [
            passage_from_row(self.columns, row, score=1.0 - row[-1], similarity=1.0 - row[-1])
            for row in rows
        ]
        return [replace(p, dense_rank=i) for i, p in enumerate(passages, start=1)], path

    @property
    def total_rows(self) -> float:
        """The planner's estimate of the chunk count (read once per retriever)."""
        if self._total_rows is None:
            self._total_rows = self.estimated_rows(None)
        return self._total_rows

    def text_search(
        self, text: str, n: int, filters: SearchFilters | None = None, *, min_terms: int = 1
    ) -> list[Passage]:
        """Up to `n` chunks containing terms of `text`, those with more distinct terms first."""
        built = self.text_query(text, n, filters, min_terms=min_terms)
        if built is None:
            return []
        conn = self._text
        with conn.transaction():
            rows = conn.execute(*built, prepare=False, binary=True).fetchall()
        return [
            passage_from_row(self.columns, row, score=row[-1], text_rank=i)
            for i, row in enumerate(rows, start=1)
        ]

    @property
    def _text(self) -> psycopg.Connection:
        """The connection of the full-text side."""
        return self.text_conn if self.text_conn is not None else self.conn

    @property
    def broken(self) -> bool:
        """Whether a connection of this retriever is closed or lost (replace the retriever)."""
        return any(c is not None and (c.closed or c.broken) for c in (self.conn, self.text_conn))

    def close(self) -> None:
        """Close both connections and the full-text side's thread."""
        if self._text_side is not None:
            self._text_side.shutdown(wait=True)
            self._text_side = None
        for conn in (self.conn, self.text_conn):
            if conn is not None:
                conn.close()

    def _text_rankings(
        self,
        variants: list[str],
        n: int,
        filters: SearchFilters | None,
        min_terms: int,
        trace: SearchTrace,
    ) -> list[list[Passage]]:
        """The full-text ranking of each variant; its time and candidates go to `trace`."""
        start = time.perf_counter()
        rankings = [self.text_search(v, n, filters, min_terms=min_terms) for v in variants]
        trace.text_candidates += sum(len(r) for r in rankings)
        trace.timings_ms["fulltext"] = (time.perf_counter() - start) * 1000
        return rankings

    def _start_text_side(
        self, rankings: Callable[[], list[list[Passage]]]
    ) -> Future[list[list[Passage]]] | None:
        """`rankings` (the full-text side) started on `text_conn`'s thread; None without one."""
        if self.text_conn is None:
            return None
        if self._text_side is None:
            self._text_side = ThreadPoolExecutor(1, thread_name_prefix="twin-fulltext")
        self.columns  # noqa: B018 (read here, on `conn`, before the thread needs it)
        return self._text_side.submit(rankings)

    # --- the search -------------------------------------------------------------------------------

    def search(
        self,
        question: str,
        k: int = 5,
        *,
        filters: SearchFilters | None = None,
        mode: SearchMode = "hybrid",
        rerank: bool = True,
        expand: bool = False,
        ef_search: int = 40,
        self_query: bool = True,
        now: datetime | None = None,
    ) -> list[Passage]:
        """The `k` best passages for `question`, best first, with scores, text and source.

        Constraints stated in the question ("in my Medium posts", "in 2023") become filters unless
        `self_query` is False; fields set in `filters` override them. `mode` picks dense, full-text
        or both (fused by RRF); `rerank` applies the configured reranker to the deduplicated
        candidates; `expand` adds acronym/synonym variants of the question as extra rankings.
        Details of the run are left in `last_trace`.
        """
        if mode not in ("hybrid", "dense", "fulltext"):
            raise ValueError(f"unknown search mode {mode!r}: use hybrid, dense or fulltext")
        if k <= 0:
            return []
        trace = SearchTrace(mode=mode)
        clock = time.perf_counter()

        parsed = self.parse(question, self_query=self_query, now=now)
        merged = parsed.filters.merged(filters)
        trace.query = parsed
        text = parsed.text
        variants = expand_query(text) if expand else [text]
        trace.variants = variants
        n = self.candidate_factor * k

        # Beside dense results, a chunk sharing one word with a long question is noise that RRF
        # would still reward; alone, full-text keeps every match.
        min_terms = self.hybrid_min_terms if mode == "hybrid" else 1
        text_rankings = partial(self._text_rankings, variants, n, merged, min_terms, trace)
        text_side = self._start_text_side(text_rankings) if mode == "hybrid" else None
        rankings: list[list[Passage]] = []
        try:
            need_vectors = mode != "fulltext" or rerank
            vectors = self.embed(variants) if need_vectors else None
            query_vector = vectors[0] if vectors is not None else None
            trace.timings_ms["embed"] = (time.perf_counter() - clock) * 1000
            if mode in ("hybrid", "dense") and vectors is not None:
                start = time.perf_counter()
                for vector in vectors:
                    found, path = self.dense_search(
                        vector, n, merged, ef_search=ef_search, min_rows=k
                    )
                    trace.dense_path = max(trace.dense_path or path, path, key=_DENSE_PATHS.index)
                    trace.dense_candidates += len(found)
                    rankings.append(found)
                trace.timings_ms["dense"] = (time.perf_counter() - start) * 1000
        except BaseException:
            if text_side is not None:
                wait([text_side])  # the thread is done with `text_conn` before this raises
            raise
        if text_side is not None:
            rankings.extend(text_side.result())
        elif mode in ("hybrid", "fulltext"):
            rankings.extend(text_rankings())

        start = time.perf_counter()
        candidates = self._fuse(rankings, mode, query_vector)
        trace.fused = len(candidates)
        candidates = drop_near_duplicates(candidates, self.duplicate_similarity)
        trace.after_dedupe = len(candidates)
        if rerank and candidates:
            trace.reranker = self.reranker.name
            results = self.reranker.rerank(text, query_vector, candidates, k)
        else:
            results = candidates[:k]
        trace.timings_ms["fuse_rerank"] = (time.perf_counter() - start) * 1000
        trace.timings_ms["total"] = (time.perf_counter() - clock) * 1000
        trace.returned = len(results)
        self.last_trace = trace
        return results

    def _fuse(
        self, rankings: list[list[Passage]], mode: str, query_vector: np.ndarray | None
    ) -> list[Passage]:
        """One candidate list: RRF for hybrid (or several variants), the list itself otherwise."""
        by_id: dict[str, Passage] = {}
        dense_rank: dict[str, int] = {}
        text_rank: dict[str, int] = {}
        for ranking in rankings:
            for p in ranking:
                by_id.setdefault(p.chunk_id, p)
                if p.dense_rank is not None:
                    dense_rank[p.chunk_id] = min(
                        dense_rank.get(p.chunk_id, p.dense_rank), p.dense_rank
                    )
                if p.text_rank is not None:
                    text_rank[p.chunk_id] = min(text_rank.get(p.chunk_id, p.text_rank), p.text_rank)
        if len(rankings) == 1:
            ordered = [(p.chunk_id, p.score) for p in rankings[0]]
        else:
            ids = [[p.chunk_id for p in ranking] for ranking in rankings]
            ordered = reciprocal_rank_fusion(ids, k=self.rrf_k)
        fused = []
        for chunk_id, score in ordered:
            p = by_id[chunk_id]
            similarity = p.similarity
            if similarity is None and query_vector is not None and p.embedding is not None:
                similarity = float(np.asarray(p.embedding, dtype=np.float32) @ query_vector)
            fused.append(
                replace(
                    p,
                    score=float(score),
                    dense_rank=dense_rank.get(chunk_id),
                    text_rank=text_rank.get(chunk_id),
                    similarity=similarity,
                )
            )
        return fused


def default_embedder(settings: Settings | None = None) -> TextEncoder:
    """The shared embedder (`settings.embedding_model` or the packaged MiniLM) the feature pipeline
    embeds chunks with, so questions and chunks are embedded by the same model."""
    from twin.settings import load_settings
    from twin.store.embeddings import Embedder

    settings = settings or load_settings()
    return Embedder.from_settings(settings)


@contextmanager
def open_retriever(settings: Settings, **options: Any) -> Iterator[Retriever]:
    """A `Retriever` on its own warehouse connections (closed on exit), with the pipeline's model
    and the configured reranker."""
    embedder = options.pop("embedder", None) or default_embedder(settings)
    options.setdefault("reranker", default_reranker(settings.rerank_model_path, encoder=embedder))
    retriever = connect_retriever(settings, embedder, **options)
    try:
        yield retriever
    finally:
        retriever.close()


def connect_retriever(settings: Settings, embedder: TextEncoder, **options: Any) -> Retriever:
    """A `Retriever` on two new warehouse connections (dense and full-text side by side); the
    caller closes it (`Retriever.close`)."""
    from twin.store.warehouse import warehouse_connection

    conn = warehouse_connection(settings, autocommit=True)
    try:
        text_conn = warehouse_connection(settings, autocommit=True)
    except Exception:
        conn.close()
        raise
    return Retriever(conn, embedder, text_conn=text_conn, **options)
