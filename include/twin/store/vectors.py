"""The pgvector store: versioned chunk tables behind one view, `vectors.chunks`.

Each index version (one embedding model, dimension and chunker version) has its own table
`vectors.chunks_<version_id>` with the chunk text, source metadata, the embedding, a generated
`tsvector`, an HNSW index (cosine) and a GIN index for hybrid search. `vectors.index_versions`
records every version and its status (building → active → retired); the view `vectors.chunks`
always selects from the active one. Activation replaces the view and flips the statuses in one
transaction, so readers see either the old index or the new, never a half-built one.

`vectors.document_state` records, per version and document, the `clean_hash` its chunks were made
from: what incremental syncs compare against.

Writes use binary COPY into a staging table, then `insert … on conflict do nothing` (chunk ids
are content hashes, so a chunk that exists is already right): loading the same rows twice
leaves one copy. No function here commits on its own unless it says so; callers group writes in
`conn.transaction()` blocks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import psycopg
from psycopg import sql

from twin.settings import DEFAULT_INDEX_BUILD_MEMORY_MB
from twin.store.index_version import SCHEMA, IndexVersion, version_id_for
from twin.store.vector_rows import (
    CHUNK_COLUMNS,
    ChunkRow,
    DocumentState,
    copy_chunks,
    count_chunks,
    delete_chunks,
    document_states,
    existing_chunk_ids,
    forget_documents,
    save_document_states,
    write_chunks,
)

__all__ = [
    "ChunkRow",
    "DocumentState",
    "IndexVersion",
    "activate",
    "active_version",
    "copy_chunks",
    "count_chunks",
    "delete_chunks",
    "document_states",
    "drop_retired_versions",
    "ensure_index_version",
    "ensure_search_indexes",
    "ensure_vector_schema",
    "existing_chunk_ids",
    "forget_documents",
    "get_index_version",
    "index_sizes",
    "list_versions",
    "save_document_states",
    "search_index_names",
    "version_id_for",
    "write_chunks",
]

VIEW = "chunks"
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
TSV_CONFIG = "english"

DDL = """
create schema if not exists vectors;
create table if not exists vectors.index_versions (
    version_id       text primary key,
    model_name       text not null,
    dimension        integer not null check (dimension > 0),
    chunker_version  text not null,
    status           text not null default 'building'
                     check (status in ('building', 'active', 'retired')),
    created_at       timestamptz not null default now(),
    activated_at     timestamptz,
    retired_at       timestamptz,
    unique (model_name, dimension, chunker_version)
);
create unique index if not exists index_versions_one_active
    on vectors.index_versions ((true)) where status = 'active';
create table if not exists vectors.document_state (
    version_id   text not null references vectors.index_versions (version_id) on delete cascade,
    document_id  text not null,
    clean_hash   text not null,
    meta_hash    text not null default '',
    chunk_count  integer not null,
    synced_at    timestamptz not null default now(),
    primary key (version_id, document_id)
);
"""

# Columns of the view, in order (a replaced view must keep them).
VIEW_COLUMNS = (
    *(name for name, _ in CHUNK_COLUMNS),
    "tsv",
    "created_at",
)


def ensure_vector_schema(conn: psycopg.Connection) -> None:
    """Create the `vectors` schema and its bookkeeping tables (idempotent)."""
    with conn.transaction():
        conn.execute(DDL)


def _version_of(row: Sequence) -> IndexVersion:
    return IndexVersion(*row)


VERSION_FIELDS = (
    "version_id, model_name, dimension, chunker_version, status, created_at, activated_at"
)


def get_index_version(conn: psycopg.Connection, version_id: str) -> IndexVersion | None:
    """The version with this id, or None."""
    row = conn.execute(
        f"select {VERSION_FIELDS} from vectors.index_versions where version_id = %s",
        (version_id,),
    ).fetchone()
    return _version_of(row) if row else None


def active_version(conn: psycopg.Connection) -> IndexVersion | None:
    """The version `vectors.chunks` reads from, or None before the first activation."""
    if not _schema_exists(conn):
        return None
    row = conn.execute(
        f"select {VERSION_FIELDS} from vectors.index_versions where status = 'active'"
    ).fetchone()
    return _version_of(row) if row else None


def list_versions(conn: psycopg.Connection) -> list[IndexVersion]:
    """Every version, newest first."""
    rows = conn.execute(
        f"select {VERSION_FIELDS} from vectors.index_versions order by created_at desc"
    ).fetchall()
    return [_version_of(r) for r in rows]


def _schema_exists(conn: psycopg.Connection) -> bool:
    return bool(
        conn.execute("select to_regclass('vectors.index_versions') is not null").fetchone()[0]
    )


def ensure_index_version(
    conn: psycopg.Connection, model_name: str, dimension: int, chunker_version: str
) -> IndexVersion:
    """The version for (model, dimension, chunker) with its table, created as `building` if new.

    An existing version is returned as it is (active stays active); a retired one becomes
    `building` again, to be brought up to date incrementally and then activated.
    """
    ensure_vector_schema(conn)
    version_id = version_id_for(model_name, dimension, chunker_version)
    with conn.transaction():
        conn.execute(
            """insert into vectors.index_versions (version_id, model_name, dimension,
                   chunker_version)
               values (%s, %s, %s, %s) on conflict (version_id) do nothing""",
            (version_id, model_name, dimension, chunker_version),
        )
        conn.execute(
            """update vectors.index_versions set status = 'building', retired_at = null
               where version_id = %s and status = 'retired'""",
            (version_id,),
        )
        version = get_index_version(conn, version_id)
        assert version is not None
        create_chunk_table(conn, version)
    return version


def create_chunk_table(conn: psycopg.Connection, version: IndexVersion) -> None:
    """The version's chunk table, its generated tsvector and its b-tree indexes (idempotent).

    The HNSW and GIN indexes come from `ensure_search_indexes`, after the initial bulk load:
    building them once over loaded rows is much faster than maintaining them row by row.
    """
    if not re.fullmatch(r"[0-9a-z_]+", version.version_id):
        raise ValueError(f"invalid index version id {version.version_id!r}")
    ddl = sql.SQL(
        """create table if not exists {table} (
            chunk_id       text primary key,
            document_id    text not null,
            chunk_index    integer not null,
            author         text not null,
            platform       text not null,
            document_kind  text not null,
            published_at   timestamptz,
            url            text,
            title          text,
            section        text,
            content        text not null,
            token_count    integer not null,
            content_hash   text not null,
            model_name     text not null,
            embedding      vector({dim}) not null,
            tsv            tsvector generated always as (
                               to_tsvector({cfg}::regconfig,
                                           coalesce(title, '') || ' ' || content)) stored,
            created_at     timestamptz not null default now()
        )"""
    ).format(
        table=version.table,
        dim=sql.Literal(version.dimension),
        cfg=sql.Literal(TSV_CONFIG),
    )
    conn.execute(ddl)
    # Keep vectors inline rather than in TOAST: exact (filtered) scans read them ~3x faster.
    # Checked first: ALTER TABLE takes an exclusive lock, and this runs on every sync.
    storage = conn.execute(
        "select attstorage from pg_attribute where attrelid = %s::regclass "
        "and attname = 'embedding'",
        (version.table.as_string(conn),),
    ).fetchone()[0]
    if storage != "p":
        conn.execute(
            sql.SQL("alter table {table} alter column embedding set storage plain").format(
                table=version.table
            )
        )
    for suffix, columns in (
        ("document", "document_id"),
        ("filter", "author, platform, document_kind, published_at"),
    ):
        conn.execute(
            sql.SQL("create index if not exists {name} on {table} ({cols})").format(
                name=sql.Identifier(f"{version.table_name}_{suffix}"),
                table=version.table,
                cols=sql.SQL(columns),
            )
        )


def search_index_names(version: IndexVersion) -> dict[str, str]:
    """Names of the version's HNSW and GIN indexes."""
    return {
        "hnsw": f"{version.table_name}_embedding_hnsw",
        "gin": f"{version.table_name}_tsv_gin",
    }


def hnsw_build_memory_mb(rows: int, dimension: int) -> int:
    """Memory pgvector's HNSW build needs to keep the graph of `rows` vectors in memory: each
    element holds its vector, its layer-0 neighbour list (2m entries) and some bookkeeping;
    with 20 % headroom. A build whose graph outgrows `maintenance_work_mem` goes on with the
    graph on disk, which pgvector documents as much slower."""
    per_row = dimension * 4 + 2 * HNSW_M * 16 + 128
    return math.ceil(rows * per_row * 1.2 / 2**20)


def ensure_search_indexes(
    conn: psycopg.Connection,
    version: IndexVersion,
    memory_limit_mb: int = DEFAULT_INDEX_BUILD_MEMORY_MB,
) -> None:
    """The HNSW (cosine, m=16, ef_construction=64) and GIN (tsv) indexes (idempotent).

    When the HNSW index is built here, the build gets the memory its graph needs (up to
    `memory_limit_mb`) for its own transaction, where the session's `maintenance_work_mem` is
    less.
    """
    names = search_index_names(version)
    with conn.transaction():
        if _missing(conn, names["hnsw"]):
            _size_build_memory(conn, version, memory_limit_mb)
        conn.execute(
            sql.SQL(
                "create index if not exists {name} on {table} using hnsw "
                "(embedding vector_cosine_ops) with (m = {m}, ef_construction = {ef})"
            ).format(
                name=sql.Identifier(names["hnsw"]),
                table=version.table,
                m=sql.Literal(HNSW_M),
                ef=sql.Literal(HNSW_EF_CONSTRUCTION),
            )
        )
        conn.execute(
            sql.SQL("create index if not exists {name} on {table} using gin (tsv)").format(
                name=sql.Identifier(names["gin"]), table=version.table
            )
        )


def _missing(conn: psycopg.Connection, index: str) -> bool:
    found = conn.execute("select to_regclass(%s)", (f"{SCHEMA}.{index}",)).fetchone()
    return found is None or found[0] is None


def _size_build_memory(conn: psycopg.Connection, version: IndexVersion, limit_mb: int) -> None:
    rows = conn.execute(sql.SQL("select count(*) from {table}").format(table=version.table))
    needed = hnsw_build_memory_mb(int(rows.fetchone()[0]), version.dimension)
    current_kb = conn.execute(
        "select setting::bigint from pg_settings where name = 'maintenance_work_mem'"
    ).fetchone()[0]
    wanted = min(needed, limit_mb)
    if wanted * 1024 > current_kb:
        conn.execute("select set_config('maintenance_work_mem', %s, true)", (f"{wanted}MB",))


def activate(conn: psycopg.Connection, version: IndexVersion) -> IndexVersion:
    """Point `vectors.chunks` at `version` and retire the previously active one, atomically.

    One transaction: the view is replaced (dropped and re-created when the dimension changes,
    since a view column cannot change type) and the statuses flip together. Readers see the old
    version until the commit and the new one after it. The search indexes are built first.
    """
    ensure_search_indexes(conn, version)
    view = sql.Identifier(SCHEMA, VIEW)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in VIEW_COLUMNS)
    with conn.transaction():
        # serialise concurrent activations; readers are only blocked for the swap itself
        conn.execute("lock table vectors.index_versions in share row exclusive mode")
        current = active_version(conn)
        select = sql.SQL("select {columns}, {vid}::text as index_version from {table}").format(
            columns=columns, vid=sql.Literal(version.version_id), table=version.table
        )
        if current is not None and current.dimension != version.dimension:
            conn.execute(sql.SQL("drop view if exists {view}").format(view=view))
        conn.execute(
            sql.SQL("create or replace view {view} as {select}").format(view=view, select=select)
        )
        conn.execute(
            """update vectors.index_versions set status = 'retired', retired_at = now()
               where status = 'active' and version_id <> %s""",
            (version.version_id,),
        )
        conn.execute(
            """update vectors.index_versions
               set status = 'active', activated_at = coalesce(
                   case when status = 'active' then activated_at end, now())
               where version_id = %s""",
            (version.version_id,),
        )
        activated = get_index_version(conn, version.version_id)
    assert activated is not None
    return activated


def drop_retired_versions(conn: psycopg.Connection, keep: int = 1) -> list[str]:
    """Drop the tables of retired versions beyond the `keep` most recently retired; their ids."""
    rows = conn.execute(
        """select version_id from vectors.index_versions where status = 'retired'
           order by retired_at desc nulls last offset %s""",
        (max(0, keep),),
    ).fetchall()
    dropped = []
    for (version_id,) in rows:
        version = get_index_version(conn, version_id)
        assert version is not None
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {t}").format(t=version.table))
            conn.execute("delete from vectors.index_versions where version_id = %s", (version_id,))
        dropped.append(version_id)
    return dropped


def index_sizes(conn: psycopg.Connection, version: IndexVersion) -> dict[str, int]:
    """Bytes on disk of the version's table and of each of its indexes."""
    rows = conn.execute(
        """select c.relname, pg_relation_size(c.oid)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname = %s and (c.relname = %s or c.oid in (
               select indexrelid from pg_index where indrelid = %s::regclass))""",
        (SCHEMA, version.table_name, f"{SCHEMA}.{version.table_name}"),
    ).fetchall()
    return {name: int(size) for name, size in rows}
