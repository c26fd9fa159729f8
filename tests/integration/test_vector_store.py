"""The pgvector store on a scratch database: binary COPY loads, HNSW plans, atomic version swaps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg import sql

from twin.settings import Settings
from twin.store import vectors
from twin.store.vectors import ChunkRow, IndexVersion
from twin.store.warehouse import scratch_database, warehouse_connection

pytestmark = pytest.mark.integration

AUTHORS = ("Ada Lindqvist", "Bo Ek")
PLATFORMS = ("medium", "blog", "linkedin", "substack")


@pytest.fixture(scope="module")
def scratch_settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings whose warehouse is a scratch database of this module."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "vec") as dsn:
        yield stack_settings.model_copy(update={"warehouse_dsn": dsn})


@pytest.fixture
def conn(scratch_settings: Settings) -> Iterator[psycopg.Connection]:
    with warehouse_connection(scratch_settings, autocommit=True) as connection:
        yield connection


def fake_rows(n: int, dim: int, model: str, seed: int = 0) -> list[ChunkRow]:
    """`n` chunk rows with random unit vectors, spread over two authors and four platforms."""
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        ChunkRow(
            chunk_id=f"{model}-{seed}-{i}",
            document_id=f"doc-{i // 4}",
            chunk_index=i % 4,
            author=AUTHORS[i % 2],
            platform=PLATFORMS[i % 4],
            document_kind="article",
            published_at=start + timedelta(days=i),
            url=f"https://example.invalid/{i // 4}",
            title=f"Document {i // 4}",
            section="Intro" if i % 4 == 0 else None,
            content=f"chunk {i} about idempotent pipelines and vector search number {i}",
            token_count=12,
            content_hash=f"hash-{i}",
            model_name=model,
            embedding=vecs[i],
        )
        for i in range(n)
    ]


def new_version(conn: psycopg.Connection, model: str, dim: int) -> IndexVersion:
    return vectors.ensure_index_version(conn, model, dim, "test")


def test_binary_copy_load_is_idempotent(conn: psycopg.Connection) -> None:
    version = new_version(conn, f"fake/copy-{uuid.uuid4().hex[:6]}", 8)
    rows = fake_rows(40, 8, version.model_name)

    first = vectors.write_chunks(conn, version, rows)
    second = vectors.write_chunks(conn, version, rows)

    assert (first, second) == (40, 0)
    assert vectors.count_chunks(conn, version) == 40
    stored, tsv = conn.execute(
        sql.SQL("select embedding, tsv::text from {t} where chunk_id = %s").format(t=version.table),
        (rows[3].chunk_id,),
    ).fetchone()
    assert np.allclose(stored.to_numpy(), rows[3].embedding)
    assert "'pipelin'" in tsv and "'document'" in tsv  # title and content are both searchable
    assert vectors.existing_chunk_ids(conn, version, ["doc-0"]) == {r.chunk_id for r in rows[:4]}


def test_deleting_a_documents_chunks_keeps_the_ones_asked_for(conn: psycopg.Connection) -> None:
    version = new_version(conn, f"fake/delete-{uuid.uuid4().hex[:6]}", 8)
    rows = fake_rows(12, 8, version.model_name)
    vectors.write_chunks(conn, version, rows)

    deleted = vectors.delete_chunks(conn, version, ["doc-1"], keep=[rows[4].chunk_id])

    assert deleted == 3
    assert vectors.existing_chunk_ids(conn, version, ["doc-1"]) == {rows[4].chunk_id}
    assert vectors.count_chunks(conn, version) == 9


def test_filtered_nearest_neighbour_query_uses_the_hnsw_index(conn: psycopg.Connection) -> None:
    version = new_version(conn, f"fake/hnsw-{uuid.uuid4().hex[:6]}", 16)
    rows = fake_rows(2000, 16, version.model_name, seed=7)
    vectors.write_chunks(conn, version, rows)
    vectors.activate(conn, version)
    conn.execute(sql.SQL("analyze {t}").format(t=version.table))
    query = rows[123].embedding + 0.01 * np.random.default_rng(1).normal(size=16).astype(np.float32)
    search = (
        "select chunk_id from vectors.chunks where author = %s and platform = %s "
        "order by embedding <=> %s limit 5"
    )
    params = (rows[123].author, rows[123].platform, query)

    with conn.transaction():
        conn.execute("set local enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("explain " + search, params).fetchall())
        found = [r[0] for r in conn.execute(search, params).fetchall()]

    assert vectors.search_index_names(version)["hnsw"] in plan, plan
    assert found[0] == rows[123].chunk_id
    assert all(rows[int(cid.rsplit("-", 1)[1])].platform == rows[123].platform for cid in found)


def test_readers_see_the_old_version_until_the_new_one_is_activated(
    conn: psycopg.Connection, scratch_settings: Settings
) -> None:
    old = new_version(conn, f"fake/old-{uuid.uuid4().hex[:6]}", 8)
    vectors.write_chunks(conn, old, fake_rows(20, 8, old.model_name))
    vectors.activate(conn, old)

    def reader_view() -> tuple[int, int, str]:
        with warehouse_connection(scratch_settings, autocommit=True) as reader:
            return reader.execute(
                "select count(*), max(vector_dims(embedding)), max(index_version) "
                "from vectors.chunks"
            ).fetchone()

    assert reader_view() == (20, 8, old.version_id)

    new = new_version(conn, f"fake/new-{uuid.uuid4().hex[:6]}", 4)
    assert new.status == "building"
    vectors.write_chunks(conn, new, fake_rows(30, 4, new.model_name))
    assert reader_view() == (20, 8, old.version_id)  # fully loaded, not yet active

    activated = vectors.activate(conn, new)

    assert reader_view() == (30, 4, new.version_id)
    assert activated.status == "active"
    assert vectors.get_index_version(conn, old.version_id).status == "retired"
    assert vectors.active_version(conn).version_id == new.version_id
    # rolling back is the same swap in the other direction
    back = new_version(conn, old.model_name, 8)
    assert back.status == "building"
    vectors.activate(conn, back)
    assert reader_view() == (20, 8, old.version_id)


def test_activation_is_one_transaction(
    conn: psycopg.Connection, scratch_settings: Settings
) -> None:
    current = new_version(conn, f"fake/cur-{uuid.uuid4().hex[:6]}", 8)
    vectors.write_chunks(conn, current, fake_rows(5, 8, current.model_name))
    vectors.activate(conn, current)
    candidate = new_version(conn, f"fake/cand-{uuid.uuid4().hex[:6]}", 8)
    vectors.write_chunks(conn, candidate, fake_rows(7, 8, candidate.model_name))

    with warehouse_connection(scratch_settings, autocommit=True) as other:
        with pytest.raises(RuntimeError), conn.transaction():
            vectors.activate(conn, candidate)
            raise RuntimeError("abort before commit")
        # the swap rolled back with the transaction: view and statuses are unchanged
        assert other.execute("select count(*) from vectors.chunks").fetchone()[0] == 5
    assert vectors.active_version(conn).version_id == current.version_id
    assert vectors.get_index_version(conn, candidate.version_id).status == "building"


def hnsw_build_notices(conn: psycopg.Connection, version: IndexVersion, limit_mb: int) -> list[str]:
    """The server's notices while the version's search indexes are built (session memory 1MB)."""
    notices: list[str] = []
    handler = notices.append
    conn.add_notice_handler(lambda diag: handler(diag.message_primary or ""))
    conn.execute("set maintenance_work_mem = '1MB'")
    try:
        vectors.ensure_search_indexes(conn, version, limit_mb)
        # the memory was the build's transaction's only
        assert conn.execute("show maintenance_work_mem").fetchone() == ("1MB",)
    finally:
        conn.execute("reset maintenance_work_mem")
    return notices


def test_an_hnsw_build_gets_the_memory_its_graph_needs_up_to_the_limit(
    conn: psycopg.Connection,
) -> None:
    rows = 3000  # 3,000 vectors of 128-d: a graph of about 2.5 MB, more than the session's 1 MB
    assert 2 <= vectors.hnsw_build_memory_mb(rows, 128) <= 8
    sized, capped = (new_version(conn, f"fake/mem-{uuid.uuid4().hex[:6]}", 128) for _ in "ab")
    for version in (sized, capped):
        vectors.write_chunks(conn, version, fake_rows(rows, 128, version.model_name))

    # held to the session's 1 MB, pgvector says the graph spilled; sized, it stays in memory
    assert any("no longer fits" in n for n in hnsw_build_notices(conn, capped, limit_mb=1))
    assert not any("no longer fits" in n for n in hnsw_build_notices(conn, sized, limit_mb=64))
    for version in (sized, capped):
        assert vectors.search_index_names(version)["hnsw"] in {
            r[0]
            for r in conn.execute(
                "select indexname from pg_indexes where schemaname = 'vectors'"
            ).fetchall()
        }
