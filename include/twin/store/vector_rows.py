"""Chunk rows of one index version: writing (COPY), finding, deleting and counting them, and
the per-document state incremental syncs compare against. `twin.store.vectors` re-exports all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql

from twin.store.index_version import IndexVersion

# Columns written by loads, in COPY order, with their Postgres types for binary COPY.
CHUNK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chunk_id", "text"),
    ("document_id", "text"),
    ("chunk_index", "integer"),
    ("author", "text"),
    ("platform", "text"),
    ("document_kind", "text"),
    ("published_at", "timestamptz"),
    ("url", "text"),
    ("title", "text"),
    ("section", "text"),
    ("content", "text"),
    ("token_count", "integer"),
    ("content_hash", "text"),
    ("model_name", "text"),
    ("embedding", "vector"),
)


@dataclass(frozen=True)
class ChunkRow:
    """One row of a chunk table: the chunk, its document's metadata and its embedding."""

    chunk_id: str
    document_id: str
    chunk_index: int
    author: str
    platform: str
    document_kind: str
    published_at: datetime | None
    url: str | None
    title: str | None
    section: str | None
    content: str
    token_count: int
    content_hash: str
    model_name: str
    embedding: np.ndarray

    def values(self) -> tuple:
        """The row's values in `CHUNK_COLUMNS` order."""
        return tuple(getattr(self, name) for name, _ in CHUNK_COLUMNS)


@dataclass(frozen=True)
class DocumentState:
    """What an index version holds for one document."""

    document_id: str
    clean_hash: str
    meta_hash: str
    chunk_count: int


def copy_chunks(conn: psycopg.Connection, table: sql.Composable, rows: Iterable[ChunkRow]) -> int:
    """Binary COPY of `rows` into `table` (no conflict handling); the number of rows sent."""
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in CHUNK_COLUMNS)
    statement = sql.SQL("copy {table} ({columns}) from stdin (format binary)").format(
        table=table, columns=columns
    )
    sent = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types([pg_type for _, pg_type in CHUNK_COLUMNS])
        for row in rows:
            copy.write_row(row.values())
            sent += 1
    return sent


def write_chunks(conn: psycopg.Connection, version: IndexVersion, rows: Iterable[ChunkRow]) -> int:
    """Load chunks into the version's table, skipping ids already there; the rows inserted.

    One transaction (a savepoint when the caller already has one): binary COPY into a temporary
    staging table, then `insert … on conflict (chunk_id) do nothing`.
    """
    stage = sql.Identifier(f"stage_{version.table_name}")
    with conn.transaction():
        # the stage copies the table's vector(N): rows of another dimension fail loudly here
        conn.execute(
            sql.SQL(
                "create temporary table if not exists {stage} "
                "(like {table} including defaults) on commit drop"
            ).format(stage=stage, table=version.table)
        )
        conn.execute(sql.SQL("truncate {stage}").format(stage=stage))
        if copy_chunks(conn, stage, rows) == 0:
            return 0
        columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in CHUNK_COLUMNS)
        cur = conn.execute(
            sql.SQL(
                "insert into {table} ({columns}) select {columns} from {stage} "
                "on conflict (chunk_id) do nothing"
            ).format(table=version.table, columns=columns, stage=stage)
        )
        inserted = cur.rowcount
        conn.execute(sql.SQL("truncate {stage}").format(stage=stage))
    return inserted


def existing_chunk_ids(
    conn: psycopg.Connection, version: IndexVersion, document_ids: Sequence[str]
) -> set[str]:
    """Ids of the chunks the version holds for these documents."""
    if not document_ids:
        return set()
    rows = conn.execute(
        sql.SQL("select chunk_id from {table} where document_id = any(%s)").format(
            table=version.table
        ),
        (list(document_ids),),
    ).fetchall()
    return {r[0] for r in rows}


def delete_chunks(
    conn: psycopg.Connection,
    version: IndexVersion,
    document_ids: Sequence[str],
    *,
    keep: Iterable[str] = (),
) -> int:
    """Delete the chunks of these documents, except the ids in `keep`; the rows deleted."""
    if not document_ids:
        return 0
    cur = conn.execute(
        sql.SQL(
            "delete from {table} where document_id = any(%s) and not (chunk_id = any(%s))"
        ).format(table=version.table),
        (list(document_ids), list(keep)),
    )
    return cur.rowcount


def count_chunks(conn: psycopg.Connection, version: IndexVersion) -> int:
    """Rows in the version's table."""
    return conn.execute(sql.SQL("select count(*) from {t}").format(t=version.table)).fetchone()[0]


def document_states(
    conn: psycopg.Connection, version: IndexVersion, document_ids: Sequence[str] | None = None
) -> dict[str, DocumentState]:
    """Per document, what the version's chunks were made from. `document_ids`: only those."""
    only = "" if document_ids is None else "and document_id = any(%s)"
    params = (version.version_id,) if document_ids is None else (version.version_id, document_ids)
    rows = conn.execute(
        f"""select document_id, clean_hash, meta_hash, chunk_count
            from vectors.document_state where version_id = %s {only}""",
        params,
    ).fetchall()
    return {r[0]: DocumentState(*r) for r in rows}


def save_document_states(
    conn: psycopg.Connection, version: IndexVersion, states: Iterable[DocumentState]
) -> None:
    """Record what the version now holds for these documents (upsert)."""
    with conn.cursor() as cur:
        cur.executemany(
            """insert into vectors.document_state
                   (version_id, document_id, clean_hash, meta_hash, chunk_count)
               values (%s, %s, %s, %s, %s)
               on conflict (version_id, document_id) do update set
                   clean_hash = excluded.clean_hash, meta_hash = excluded.meta_hash,
                   chunk_count = excluded.chunk_count, synced_at = now()""",
            [
                (version.version_id, s.document_id, s.clean_hash, s.meta_hash, s.chunk_count)
                for s in states
            ],
        )


def forget_documents(
    conn: psycopg.Connection, version: IndexVersion, document_ids: Sequence[str]
) -> int:
    """Delete the documents' chunks and state from the version; the chunk rows deleted."""
    deleted = delete_chunks(conn, version, document_ids)
    conn.execute(
        "delete from vectors.document_state where version_id = %s and document_id = any(%s)",
        (version.version_id, list(document_ids)),
    )
    return deleted
