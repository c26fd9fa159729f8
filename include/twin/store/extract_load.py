"""Incremental extract-load: MongoDB `twin.documents` → Postgres `raw.documents`.

Documents whose `last_changed` is past the watermark are read in `(last_changed, _id)` order and
loaded in batches. Each batch is one transaction: COPY into a temporary table, upsert into
`raw.documents` on `document_id` (a row whose content hash and deletion mark are unchanged is
not rewritten), then advance the watermark in the same transaction. A killed or retried load
therefore never leaves a partial batch or a duplicate, and never skips a document.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from pymongo.database import Database

from twin.settings import Settings

log = logging.getLogger(__name__)

PIPELINE = "mongo_documents"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DDL = """
create schema if not exists raw;
create table if not exists raw.documents (
    document_id   text primary key,
    url           text not null unique,
    platform      text not null,
    kind          text not null,
    author        text not null,
    title         text,
    content       text,
    published_at  timestamptz,
    content_hash  text not null,
    word_count    integer,
    source_url    text,
    first_seen    timestamptz,
    last_changed  timestamptz not null,
    fetched_at    timestamptz,
    deleted_at    timestamptz,
    version       integer not null default 1,
    payload       jsonb not null,
    loaded_at     timestamptz not null default now()
);
create index if not exists documents_loaded_at on raw.documents (loaded_at);
create index if not exists documents_author_platform on raw.documents (author, platform);
create table if not exists raw.load_watermarks (
    pipeline          text primary key,
    last_changed      timestamptz not null,
    last_document_id  text not null,
    updated_at        timestamptz not null default now()
);
"""

COLUMNS = (
    "document_id",
    "url",
    "platform",
    "kind",
    "author",
    "title",
    "content",
    "published_at",
    "content_hash",
    "word_count",
    "source_url",
    "first_seen",
    "last_changed",
    "fetched_at",
    "deleted_at",
    "version",
    "payload",
)

UPSERT = f"""
insert into raw.documents ({", ".join(COLUMNS)})
select {", ".join(COLUMNS)} from batch
on conflict (document_id) do update set
    {", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "document_id")},
    loaded_at = now()
where raw.documents.content_hash is distinct from excluded.content_hash
   or raw.documents.deleted_at is distinct from excluded.deleted_at
   or raw.documents.version < excluded.version
returning (xmax = 0) as inserted
"""


@dataclass(frozen=True)
class LoadResult:
    """What one extract-load run did."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    batches: int = 0
    watermark: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema, table and watermark table (idempotent)."""
    conn.execute(DDL)


def read_watermark(conn: psycopg.Connection) -> tuple[datetime, str]:
    row = conn.execute(
        "select last_changed, last_document_id from raw.load_watermarks where pipeline = %s",
        (PIPELINE,),
    ).fetchone()
    return (row[0], row[1]) if row else (EPOCH, "")


def changed_documents(db: Database, since: tuple[datetime, str], batch_size: int):
    """Documents changed after the watermark, in watermark order, batch by batch."""
    last_changed, last_id = since
    query = {
        "$or": [
            {"last_changed": {"$gt": last_changed}},
            {"last_changed": last_changed, "_id": {"$gt": last_id}},
        ]
    }
    cursor = db["documents"].find(query).sort([("last_changed", 1), ("_id", 1)])
    batch: list[dict] = []
    for doc in cursor.batch_size(batch_size):
        batch.append(doc)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def row_of(doc: dict) -> tuple:
    """One `raw.documents` row: typed key columns plus the whole document as jsonb."""
    payload = {k: v for k, v in doc.items() if k not in ("_id",)}
    return (
        doc["_id"],
        doc["url"],
        doc["platform"],
        doc["kind"],
        doc["author"],
        doc.get("title"),
        doc.get("text"),
        as_utc(doc.get("published_at")),
        doc["content_hash"],
        doc.get("word_count"),
        doc.get("source_url"),
        as_utc(doc.get("first_seen")),
        as_utc(doc["last_changed"]),
        as_utc(doc.get("fetched_at")),
        as_utc(doc.get("deleted_at")),
        int(doc.get("version", 1)),
        json.dumps(payload, default=str, ensure_ascii=False),
    )


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_batch(conn: psycopg.Connection, docs: list[dict]) -> tuple[int, int]:
    """Load one batch and advance the watermark, all in one transaction: (inserted, updated)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside an open transaction this would be a savepoint, committed only with the caller's.
        raise RuntimeError("load_batch needs an idle connection: commit or roll back first")
    with conn.transaction():
        conn.execute(
            "create temporary table batch (like raw.documents including defaults) on commit drop"
        )
        with conn.cursor().copy(f"copy batch ({', '.join(COLUMNS)}) from stdin") as copy:
            for doc in docs:
                copy.write_row(row_of(doc))
        flags = [row[0] for row in conn.execute(UPSERT).fetchall()]
        last = docs[-1]
        conn.execute(
            """insert into raw.load_watermarks (pipeline, last_changed, last_document_id)
               values (%s, %s, %s)
               on conflict (pipeline) do update set last_changed = excluded.last_changed,
                   last_document_id = excluded.last_document_id, updated_at = now()""",
            (PIPELINE, as_utc(last["last_changed"]), last["_id"]),
        )
    inserted = sum(1 for f in flags if f)
    return inserted, len(flags) - inserted


def extract_load(db: Database, conn: psycopg.Connection, batch_size: int = 1000) -> LoadResult:
    """Load every document changed since the watermark; return what was done."""
    began = time.monotonic()
    ensure_raw_schema(conn)
    conn.commit()
    since = read_watermark(conn)
    conn.commit()
    read = inserted = updated = batches = 0
    for docs in changed_documents(db, since, batch_size):
        new, changed = load_batch(conn, docs)
        read, inserted, updated, batches = (
            read + len(docs),
            inserted + new,
            updated + changed,
            batches + 1,
        )
        log.info(
            "batch %d: %d documents read, %d inserted, %d updated", batches, len(docs), new, changed
        )
    mark = read_watermark(conn)[0]
    conn.commit()
    return LoadResult(
        read,
        inserted,
        updated,
        read - inserted - updated,
        batches,
        mark.isoformat() if mark != EPOCH else None,
        round(time.monotonic() - began, 3),
    )


def run_extract_load(settings: Settings, batch_size: int = 1000) -> dict:
    """Extract-load with the configured stores (what the `twin_warehouse` DAG calls)."""
    from twin.store.mongo import mongo_client, twin_database
    from twin.store.warehouse import warehouse_connection

    with mongo_client(settings) as client, warehouse_connection(settings) as conn:
        result = extract_load(twin_database(client, settings), conn, batch_size)
    log.info("extract-load: %s", result)
    return result.as_dict()
