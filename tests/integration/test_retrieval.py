"""Hybrid retrieval on the sample author's chunks, built by the feature pipeline in a scratch DB.

The module fixture creates a database of its own, fills `marts.documents` with the sample author's
writing (the rows the warehouse would hold after a crawl of the sample site), runs the feature
pipeline to build `vectors.chunks`, and drops the database afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from psycopg import sql

from sample_author.questions import PARAPHRASES, QUESTIONS
from twin.rag.evaluate import CONFIGS, evaluate_labelled_set, load_questions
from twin.rag.query import SearchFilters
from twin.rag.rerank import WindowReranker
from twin.rag.retrieve import Retriever
from twin.rag.tasks import RetrievalQualityError, check_retrieval_gate
from twin.settings import Settings

pytestmark = pytest.mark.integration

SITE = "http://sample-author.invalid"
MARTS_DDL = """
create schema if not exists marts;
create table marts.documents (
    document_id text primary key, author text not null, platform text not null,
    document_kind text not null, title text, url text not null, published_at timestamptz,
    word_count int, language text, body text not null, clean_hash text not null,
    updated_at timestamptz not null default now()
)
"""


def sample_document_rows() -> list[dict]:
    """`marts.documents` rows for the sample author: every published document and repository.

    URLs are the ones the sample site serves (with its placeholder origin); ids follow the raw
    store's rule, sha256 of the canonical URL, first 32 hex digits. A repository's body is its
    README followed by its markdown docs in path order, as the warehouse builds it.
    """
    from sample_author import blog, linkedin, medium, substack
    from sample_author.content import AUTHOR, REPOS_DIR, load_documents
    from sample_author.gitrepos import REPOS

    def url_of(doc) -> str:
        if doc.platform == "blog":
            return SITE + blog.post_path(doc)
        if doc.platform == "medium":
            return SITE + medium.story_path(doc)
        if doc.platform == "substack":
            return SITE + substack.post_path(doc.slug)
        if doc.kind == "post":
            return linkedin.share_link(doc.slug)
        return SITE + linkedin.pulse_path(doc)

    items = [(url_of(d), d.platform, d.kind, d.title, d.date, d.body) for d in load_documents()]
    for spec in REPOS:
        root = REPOS_DIR / spec.name
        docs = sorted(p for p in (root / "docs").glob("*.md"))
        body = "\n\n".join(p.read_text(encoding="utf-8") for p in [root / "README.md", *docs])
        published = datetime.fromisoformat(spec.commits[-1].date).astimezone(UTC)
        items.append(
            (f"{SITE}/git/{spec.name}.git", "github", "repository", spec.name, published, body)
        )
    return [
        {
            "document_id": hashlib.sha256(url.encode()).hexdigest()[:32],
            "author": AUTHOR.name,
            "platform": platform,
            "document_kind": kind,
            "title": title,
            "url": url,
            "published_at": published,
            "word_count": len(body.split()),
            "language": "en",
            "body": body,
            "clean_hash": hashlib.md5(body.encode()).hexdigest(),
        }
        for url, platform, kind, title, published, body in items
    ]


@dataclass
class ChunkStore:
    """The scratch database with the sample author's chunks, and how to reach it."""

    settings: Settings
    dsn: str
    embedder: object


@pytest.fixture(scope="module")
def chunk_store(stack_settings: Settings) -> Iterator[ChunkStore]:
    """A scratch database: sample author in `marts.documents`, chunks built by `sync_features`."""
    from twin.features.embed import Embedder
    from twin.features.pipeline import sync_features
    from twin.store.warehouse import scratch_database

    with scratch_database(stack_settings.require("warehouse_dsn"), "t_rag") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            rows = sample_document_rows()
            columns = list(rows[0])
            with conn.cursor().copy(
                f"copy marts.documents ({', '.join(columns)}) from stdin"
            ) as cp:
                for row in rows:
                    cp.write_row([row[c] for c in columns])
        settings = stack_settings.model_copy(update={"warehouse_dsn": dsn})
        embedder = Embedder.get()
        result = sync_features(settings, embedder=embedder)
        assert result.chunks_written > 0 and not result.failures, result.as_dict()
        yield ChunkStore(settings=settings, dsn=dsn, embedder=embedder)


@pytest.fixture
def retriever(chunk_store: ChunkStore) -> Iterator[Retriever]:
    """A retriever on its own connection to the scratch database."""
    from pgvector.psycopg import register_vector

    with psycopg.connect(chunk_store.dsn, autocommit=True) as conn:
        register_vector(conn)
        yield Retriever(conn, chunk_store.embedder)


def hnsw_index_names(conn: psycopg.Connection) -> list[str]:
    """Names of the HNSW indexes in the `vectors` schema."""
    rows = conn.execute(
        "select indexname from pg_indexes where schemaname = 'vectors' and indexdef ilike %s",
        ("%using hnsw%",),
    ).fetchall()
    return [r[0] for r in rows]


def test_platform_filter_runs_inside_the_hnsw_query(retriever: Retriever) -> None:
    conn = retriever.conn
    indexes = hnsw_index_names(conn)
    assert indexes, "the feature pipeline built no HNSW index"
    vector = retriever.embed(["How do I tune an HNSW index?"])[0]
    filters = SearchFilters(platforms=["medium"])
    query, params = retriever.dense_query(vector, 20, filters)
    with conn.transaction():
        # On a table this small the planner rightly prefers the b-tree filter index and an exact
        # sort; switching the alternatives off shows the HNSW scan answering the filtered query.
        conn.execute("set local enable_seqscan = off")
        conn.execute("set local enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in conn.execute(b"explain " + query.as_bytes(conn), params))
    assert any(name in plan for name in indexes), plan
    assert "platform = ANY" in plan, plan  # the filter is part of the indexed query itself

    passages = retriever.search("How do I tune an HNSW index?", 8, filters=filters)
    assert passages and {p.platform for p in passages} == {"medium"}


def test_constraints_in_the_question_filter_the_results(retriever: Retriever) -> None:
    passages = retriever.search("What did I write about pgvector on LinkedIn in 2023?", 5)
    assert passages
    assert {p.platform for p in passages} == {"linkedin"}
    assert all(p.published_at and p.published_at.year == 2023 for p in passages)
    trace = retriever.last_trace
    assert trace.query is not None and trace.query.text == "What did I write about pgvector?"

    repo = retriever.search("Which rule rejects tasks named task_1, in the repo?", 3)
    assert repo and {p.platform for p in repo} == {"github"}
    assert "dagcheck" in repo[0].url


def test_chunks_found_by_both_searches_rank_above_those_found_by_one(
    retriever: Retriever,
) -> None:
    # An error code: full-text finds the few chunks naming it, dense finds neighbours as well.
    passages = retriever.search("E-4017", 10, rerank=False)
    both = [i for i, p in enumerate(passages) if p.dense_rank and p.text_rank]
    single = [i for i, p in enumerate(passages) if bool(p.dense_rank) != bool(p.text_rank)]
    assert both and single, [(p.dense_rank, p.text_rank) for p in passages]
    assert max(both) < min(single)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_identical_content_is_returned_once(chunk_store: ChunkStore) -> None:
    from pgvector.psycopg import register_vector

    with psycopg.connect(chunk_store.dsn) as conn:  # one transaction, rolled back at the end
        register_vector(conn)
        retriever = Retriever(conn, chunk_store.embedder)
        question = "What does an empty delivered_at field mean?"
        top = retriever.search(question, 3, rerank=False)[0]
        # A second copy of the best chunk under another document: same text, hash and vector.
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = "
                "'vectors' and table_name = 'chunks' "
                "and column_name not in ('tsv', 'created_at', 'index_version')"
            )
        ]
        overrides = {"chunk_id": "copy-" + top.chunk_id, "document_id": "copy", "url": "copy"}
        values = [sql.Placeholder(c) if c in overrides else sql.Identifier(c) for c in columns]
        conn.execute(
            sql.SQL("insert into vectors.chunks ({}) select {} from vectors.chunks {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(values),
                sql.SQL("where chunk_id = %(source)s"),
            ),
            {**overrides, "source": top.chunk_id},
        )
        passages = retriever.search(question, 5, rerank=False)
        ids = [p.chunk_id for p in passages]
        assert len({top.chunk_id, "copy-" + top.chunk_id} & set(ids)) == 1, ids
        assert len({p.content_hash for p in passages}) == len(passages)
        conn.rollback()


def test_hybrid_with_rerank_recalls_at_least_as_much_as_fulltext(retriever: Retriever) -> None:
    question_set = load_questions(QUESTIONS)
    assert len(question_set.questions) >= 40
    table = evaluate_labelled_set(retriever, question_set)
    print("\n" + table.render_table())
    assert table.row("dense").questions >= 40
    assert table.row("hybrid+rerank").recall_at_5 >= table.row("fulltext").recall_at_5
    assert table.row("hybrid").recall_at_5 >= table.row("dense").recall_at_5
    # The default reranker (sentence windows) loses nothing that plain fusion found in the top 5
    # (MMR, the old default, dropped recall@5 from 0.949 to 0.902 here).
    assert table.row("hybrid+rerank").recall_at_5 >= table.row("hybrid").recall_at_5
    assert table.row("hybrid+rerank").mrr >= table.row("hybrid").mrr

    questions = table.row("hybrid+rerank").questions
    result = {**table.to_dict(), "table": table.render_table(), "questions": questions}
    assert check_retrieval_gate(result, min_recall_at_5=0.5)["gate"] == "passed"
    with pytest.raises(RetrievalQualityError, match="below the gate"):
        check_retrieval_gate(result, min_recall_at_5=1.01)


def test_sentence_windows_rank_paraphrased_facts_above_plain_fusion(retriever: Retriever) -> None:
    # Facts from deep inside a body, asked in other words: a chunk's one vector dilutes them, the
    # sentence window that states them does not.
    question_set = load_questions(PARAPHRASES)
    configs = [c for c in CONFIGS if c.name in ("hybrid", "hybrid+rerank")]
    table = evaluate_labelled_set(retriever, question_set, configs=configs)
    print("\n" + table.render_table())
    assert table.row("hybrid").questions >= 40 and set(table.groups) == {"dev", "test"}
    assert table.row("hybrid+rerank").mrr > table.row("hybrid").mrr
    assert table.row("hybrid+rerank").recall_at_5 >= table.row("hybrid").recall_at_5
    assert table.group("dev", "hybrid+rerank").mrr > table.group("dev", "hybrid").mrr


def test_passages_carry_text_and_source(retriever: Retriever) -> None:
    passages = retriever.search("Which LoRA rank should I start with?", 3)
    assert passages
    for p in passages:
        assert p.content and p.url and p.title and p.document_id
        assert isinstance(p.embedding, np.ndarray)
        assert "embedding" not in p.to_dict()


class RecordingConnection(psycopg.Connection):
    """A connection that keeps the text of every statement it executes."""

    statements: list[str]

    def execute(self, query, *args, **kwargs):  # type: ignore[override]
        text = query if isinstance(query, str | bytes) else query.as_string(self)
        self.__dict__.setdefault("statements", []).append(str(text))
        return super().execute(query, *args, **kwargs)


def test_the_full_text_side_on_its_own_connection_finds_the_same_passages(
    chunk_store: ChunkStore,
) -> None:
    questions = [q.question for q in load_questions(PARAPHRASES).questions[:12]]
    questions.append("What did I write about pgvector on LinkedIn in 2023?")
    with (
        RecordingConnection.connect(chunk_store.dsn, autocommit=True) as conn,
        RecordingConnection.connect(chunk_store.dsn, autocommit=True) as text_conn,
    ):
        alone = Retriever(conn, chunk_store.embedder)
        beside = Retriever(conn, chunk_store.embedder, text_conn=text_conn)
        for question in questions:
            expected = alone.search(question, 5)
            conn.statements, text_conn.statements = [], []
            found = beside.search(question, 5)
            assert [(p.chunk_id, p.dense_rank, p.text_rank) for p in found] == [
                (p.chunk_id, p.dense_rank, p.text_rank) for p in expected
            ], question
            assert beside.last_trace.text_candidates == alone.last_trace.text_candidates
            # the full-text queries ran on the second connection, the dense one on the first
            assert any("ts_rank_cd" in q for q in text_conn.statements), question
            assert not any("ts_rank_cd" in q for q in conn.statements), question
            assert any("<=>" in q for q in conn.statements), question
        beside.close()
        assert conn.closed and text_conn.closed and beside.broken


class CountingEncoder:
    """The session's embedder, counting the texts each `encode` call is given."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.texts: list[str] = []

    def encode(self, texts, *args, **kwargs):
        self.texts.extend(texts)
        return self.embedder.encode(texts, *args, **kwargs)


def test_a_question_asked_in_every_mode_is_embedded_once(chunk_store: ChunkStore) -> None:
    """What the retrieval gate does: each question searched per configuration. The question is
    encoded once (the sentence windows are the reranker's, on the embedder itself); every mode
    finds what a retriever that never saw the question finds."""
    questions = [q.question for q in load_questions(PARAPHRASES).questions[:6]]
    with psycopg.connect(chunk_store.dsn, autocommit=True) as conn:
        counting = CountingEncoder(chunk_store.embedder)
        windows = WindowReranker(chunk_store.embedder)
        cached = Retriever(conn, counting, reranker=windows)
        for config in CONFIGS:
            for question in questions:
                fresh = Retriever(conn, chunk_store.embedder, reranker=windows)
                expected = fresh.search(question, 5, mode=config.mode, rerank=config.rerank)
                found = cached.search(question, 5, mode=config.mode, rerank=config.rerank)
                assert [p.chunk_id for p in found] == [p.chunk_id for p in expected], (
                    config.name,
                    question,
                )
                assert [round(p.score, 6) for p in found] == [
                    round(p.score, 6) for p in expected
                ], (config.name, question)
    assert sorted(counting.texts) == sorted(questions), counting.texts


def test_more_texts_than_the_cache_holds_are_embedded_in_one_call(
    chunk_store: ChunkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call may name more texts than the question cache keeps: each gets its own vector."""
    import twin.rag.retrieve as retrieve

    monkeypatch.setattr(retrieve, "QUERY_CACHE_SIZE", 2)
    texts = ["the Tuesday test", "idempotent pipelines", "LoRA rank", "the Tuesday test"]
    with psycopg.connect(chunk_store.dsn, autocommit=True) as conn:
        vectors = Retriever(conn, chunk_store.embedder).embed(texts)
        alone = [Retriever(conn, chunk_store.embedder).embed([t])[0] for t in texts]
    assert vectors.shape[0] == len(texts)
    for got, expected in zip(vectors, alone, strict=True):
        assert float(got @ expected) > 0.999
