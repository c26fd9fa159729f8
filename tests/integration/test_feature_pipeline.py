"""The incremental feature sync on the sample author's marts, in a scratch warehouse."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from psycopg import sql

from sample_author import AUTHOR, load_documents
from sample_author.content import REPOS_DIR
from twin.features.embed import Embedder
from twin.features.pipeline import (
    finish_sync,
    maintain_index,
    plan_pieces,
    sync_features,
    sync_piece,
)
from twin.settings import Settings
from twin.store import vectors
from twin.store.warehouse import scratch_database, warehouse_connection

pytestmark = pytest.mark.integration

MARTS_DDL = """
create schema if not exists marts;
create table marts.documents (
    document_id    text primary key,
    author         text not null,
    platform       text not null,
    document_kind  text not null,
    title          text,
    url            text,
    published_at   timestamptz,
    word_count     integer,
    language       text,
    body           text not null,
    clean_hash     text not null,
    updated_at     timestamptz
);
"""
EDITED_DOCUMENT = "medium/lora-on-a-budget"
DELETED_DOCUMENT = "blog/hnsw-without-mysticism"


def clean_hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()


def repository_body(repo: str) -> str:
    """README, then each docs file under a `### path` heading: how the marts encode a repo."""
    root = REPOS_DIR / repo
    parts = [(root / "README.md").read_text(encoding="utf-8").strip()]
    for doc in sorted((root / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8").strip()
        parts.append(f"### {doc.relative_to(root).as_posix()}\n\n{text}")
    return "\n\n".join(parts) + "\n"


def sample_mart_rows() -> list[tuple]:
    """The sample author's writing and repositories as `marts.documents` rows."""
    loaded = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for d in load_documents():
        body = d.body.strip() + "\n"
        rows.append(
            (d.key, AUTHOR.name, d.platform, d.kind, d.title,
             f"https://sample-author.invalid/{d.key}", d.date, len(body.split()), "en", body,
             clean_hash(d.title, body), loaded)
        )  # fmt: skip
    for repo in ("dagcheck", "tidy-vectors"):
        body = repository_body(repo)
        rows.append(
            (f"github/{repo}", AUTHOR.name, "github", "repository", repo,
             f"https://github.invalid/{AUTHOR.handle}/{repo}", datetime(2024, 6, 1, tzinfo=UTC),
             len(body.split()), "en", body, clean_hash(repo, body), loaded)
        )  # fmt: skip
    return rows


@contextmanager
def sample_marts(stack_settings: Settings, prefix: str) -> Iterator[Settings]:
    """A scratch warehouse whose `marts.documents` holds the sample author; yields settings."""
    with scratch_database(stack_settings.require("warehouse_dsn"), prefix) as dsn:
        settings = stack_settings.model_copy(update={"warehouse_dsn": dsn})
        with warehouse_connection(settings, autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            with conn.cursor().copy("copy marts.documents from stdin") as copy:
                for row in sample_mart_rows():
                    copy.write_row(row)
        yield settings


@pytest.fixture(scope="module")
def marts_settings(stack_settings: Settings) -> Iterator[Settings]:
    with sample_marts(stack_settings, "feat") as settings:
        yield settings


@pytest.fixture(scope="module")
def first_sync(marts_settings: Settings):
    return sync_features(marts_settings, progress=False)


@pytest.fixture
def conn(marts_settings: Settings) -> Iterator[psycopg.Connection]:
    with warehouse_connection(marts_settings, autocommit=True) as connection:
        yield connection


def chunk_rows(conn: psycopg.Connection) -> dict[str, tuple]:
    """chunk_id → (document_id, xmin) in the active version; xmin changes when a row is written."""
    table = vectors.active_version(conn).table
    rows = conn.execute(
        sql.SQL("select chunk_id, document_id, xmin::text from {t}").format(t=table)
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_first_sync_indexes_every_document(first_sync, conn: psycopg.Connection) -> None:
    documents = conn.execute("select count(*) from marts.documents").fetchone()[0]
    rows = chunk_rows(conn)

    assert first_sync.documents_seen == first_sync.documents_changed == documents == 67
    assert first_sync.chunks_embedded == first_sync.chunks_written == len(rows) > documents
    assert first_sync.activated and not first_sync.failures
    assert {d for d, _ in rows.values()} == {
        r[0] for r in conn.execute("select document_id from marts.documents")
    }
    dims, models = conn.execute(
        "select max(vector_dims(embedding)), array_agg(distinct model_name) from vectors.chunks"
    ).fetchone()
    assert (dims, models) == (384, ["sentence-transformers/all-MiniLM-L6-v2"])


def test_second_sync_embeds_and_writes_nothing(
    first_sync, marts_settings: Settings, conn: psycopg.Connection
) -> None:
    before = chunk_rows(conn)

    second = sync_features(marts_settings, progress=False)

    assert second.documents_seen == 67
    assert (second.documents_changed, second.chunks_embedded, second.chunks_written) == (0, 0, 0)
    assert (second.chunks_deleted, second.chunks_updated, second.activated) == (0, 0, False)
    assert chunk_rows(conn) == before


def test_pieces_on_several_workers_build_the_same_index_as_one_sync(
    first_sync, stack_settings: Settings, conn: psycopg.Connection
) -> None:
    """The fanned-out path (plan, pieces in any order, a piece retried, finish) indexes what
    one `sync_features` indexes, and a rerun with nothing new plans no piece."""
    with sample_marts(stack_settings, "featpieces") as settings:
        pieces = plan_pieces(settings, piece_documents=20)
        assert [len(p["documents"]) for p in pieces] == [20, 20, 20, 7]
        results = [sync_piece(settings, p).as_dict() for p in reversed(pieces)]
        retried = sync_piece(settings, pieces[0])  # a retry after its first try committed
        assert (retried.documents_changed, retried.chunks_written) == (0, 0)
        done = finish_sync(settings, [*results, retried.as_dict()])
        assert done.activated and not done.failures
        assert (done.documents_changed, done.chunks_written) == (
            first_sync.documents_changed,
            first_sync.chunks_written,
        )
        with warehouse_connection(settings, autocommit=True) as fanned:
            assert set(chunk_rows(fanned)) == set(chunk_rows(conn))
        assert plan_pieces(settings) == []
        assert finish_sync(settings, []).changed is False


def test_editing_a_document_reembeds_only_its_changed_chunks(
    first_sync, marts_settings: Settings, conn: psycopg.Connection
) -> None:
    before = chunk_rows(conn)
    mine = {cid for cid, (doc, _) in before.items() if doc == EDITED_DOCUMENT}
    title, body = conn.execute(
        "select title, body from marts.documents where document_id = %s", (EDITED_DOCUMENT,)
    ).fetchone()
    edited = body.replace("My manager was kind about it.", "My manager laughed about it.")
    assert edited != body
    conn.execute(
        "update marts.documents set body = %s, clean_hash = %s where document_id = %s",
        (edited, clean_hash(title, edited), EDITED_DOCUMENT),
    )

    result = sync_features(marts_settings, progress=False)

    after = chunk_rows(conn)
    assert result.documents_changed == 1
    assert result.chunks_embedded == result.chunks_written == result.chunks_deleted == 1
    assert len(mine) > 3
    assert len(mine - set(after)) == 1  # one old chunk replaced, the rest kept as they were
    assert {cid: v for cid, v in before.items() if cid not in mine} == {
        cid: v for cid, v in after.items() if v[0] != EDITED_DOCUMENT
    }
    new_content = conn.execute(
        "select content from vectors.chunks where chunk_id = any(%s)",
        (list(set(after) - set(before)),),
    ).fetchone()[0]
    assert "My manager laughed about it." in new_content


def test_deleting_a_document_removes_its_chunks(
    first_sync, marts_settings: Settings, conn: psycopg.Connection
) -> None:
    before = chunk_rows(conn)
    mine = {cid for cid, (doc, _) in before.items() if doc == DELETED_DOCUMENT}
    conn.execute("delete from marts.documents where document_id = %s", (DELETED_DOCUMENT,))

    result = sync_features(marts_settings, progress=False)

    assert mine and result.documents_deleted == 1
    assert result.chunks_deleted == len(mine) and result.chunks_embedded == 0
    assert chunk_rows(conn) == {k: v for k, v in before.items() if k not in mine}
    state = conn.execute(
        "select count(*) from vectors.document_state where document_id = %s",
        (DELETED_DOCUMENT,),
    ).fetchone()[0]
    assert state == 0


def test_the_index_answers_a_question_with_the_right_document(
    first_sync, conn: psycopg.Connection
) -> None:
    query = Embedder.get().encode(["How do I fine-tune a model with LoRA on one GPU?"])[0]
    hits = conn.execute(
        """select document_id from vectors.chunks where author = %s
           order by embedding <=> %s limit 5""",
        (AUTHOR.name, query),
    ).fetchall()
    keyword = conn.execute(
        """select document_id from vectors.chunks
           where tsv @@ websearch_to_tsquery('english', 'tuesday test rerun') limit 1"""
    ).fetchone()

    assert EDITED_DOCUMENT in {h[0] for h in hits}
    assert keyword is not None


class HashingEmbedder:
    """A stand-in 8-d "model": bag-of-token-ids hashed into 8 buckets (the real tokenizer)."""

    model_name = "test/hashing-8d"
    dimension = 8
    max_seq_length = 256

    def __init__(self) -> None:
        self.tokenizer = Embedder.get().tokenizer

    def encode(self, texts, batch_size: int = 64, *, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for tid in self.tokenizer(text, add_special_tokens=False)["input_ids"]:
                out[i, tid % self.dimension] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_a_model_switch_builds_a_new_version_and_swaps_atomically(
    first_sync, marts_settings: Settings, conn: psycopg.Connection
) -> None:
    old = vectors.active_version(conn)
    old_rows = len(chunk_rows(conn))

    switched = sync_features(marts_settings, embedder=HashingEmbedder(), progress=False)

    new = vectors.active_version(conn)
    assert switched.activated and new.version_id == switched.index_version != old.version_id
    assert (new.model_name, new.dimension) == ("test/hashing-8d", 8)
    assert vectors.get_index_version(conn, old.version_id).status == "retired"
    assert switched.documents_changed == switched.documents_seen == 66
    dims = conn.execute("select distinct vector_dims(embedding) from vectors.chunks").fetchall()
    assert dims == [(8,)]
    assert len(chunk_rows(conn)) == old_rows  # same chunker, same chunks

    back = sync_features(marts_settings, progress=False)  # the old model again: a rollback
    assert back.activated and back.chunks_embedded == 0
    assert vectors.active_version(conn).version_id == old.version_id

    report = maintain_index(marts_settings, keep_retired=0)
    assert report["active_version"]["version_id"] == old.version_id
    assert report["dropped_versions"] == [new.version_id]
    assert report["rows"] == old_rows
    assert any(name.endswith("_embedding_hnsw") for name in report["sizes_bytes"])


def test_a_version_built_in_one_pass_keeps_each_author_and_platform_together(
    stack_settings: Settings,
) -> None:
    """Two authors whose document ids interleave: the rows land grouped by (author, platform),
    the filter every search applies, not in id order (a page per chunk for a filtered scan)."""
    with (
        sample_marts(stack_settings, "featorder") as settings,
        warehouse_connection(settings, autocommit=True) as conn,
    ):
        conn.execute(
            "insert into marts.documents select document_id || '~b', 'Second Author', "
            "platform, document_kind, title, url || '~b', published_at, word_count, "
            "language, body, clean_hash, updated_at from marts.documents"
        )
        ids = [r[0] for r in conn.execute("select document_id from marts.documents")]
        authors = dict(conn.execute("select document_id, author from marts.documents"))
        in_id_order = [authors[d] for d in sorted(ids)]
        assert sum(a != b for a, b in itertools.pairwise(in_id_order)) > 50  # ids interleave

        result = sync_features(
            settings, embedder=HashingEmbedder(), document_batch=16, progress=False
        )
        assert result.activated and not result.failures

        table = vectors.active_version(conn).table

        def runs(order: str) -> int:
            """Stretches of one (author, platform) in the table read in `order`."""
            stored = conn.execute(
                sql.SQL("select author, platform from {t} order by " + order).format(t=table)
            ).fetchall()
            return 1 + sum(a != b for a, b in itertools.pairwise(stored))

        # Rows of a later batch may fill the free space of an earlier batch's last pages, so the
        # 10 groups are not perfectly contiguous; in id order every document is a run of its own.
        by_id, on_disk = runs("document_id, chunk_index"), runs("ctid")
        assert by_id == 134 and on_disk <= 60, (on_disk, by_id)
