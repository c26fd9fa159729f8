"""Incremental extract-load: MongoDB `twin.documents` → Postgres `raw.documents`.

The order comes from the store, never from a writer's clock: every write to a raw document sets
`stored_at` with the MongoDB server's own clock (`$currentDate`). A load scans the documents
stored since the watermark minus an overlap window, which covers writes that were stamped
before an earlier load but committed after it (a multi-document transaction commits at most
`transactionLifetimeLimitSeconds`, 60 s by default, after its first write). The scan reads only
each document's key (id, version, content hash, deletion mark) and compares it with the
warehouse; only documents that differ are read whole and loaded, so the overlap costs a key
read, not a reload.

Each batch is one transaction: COPY into a temporary table, upsert into `raw.documents` on
`document_id` (a row is rewritten only by a newer version, or by the same version with another
content hash or deletion mark), then advance the watermark in the same transaction. One load
runs at a time (a Postgres advisory lock); a killed or retried load therefore never leaves a
partial batch or a duplicate, and a late or back-dated write is still loaded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from pymongo.database import Database

from twin.settings import Settings
from twin.store.raw_documents import STORED_AT

log = logging.getLogger(__name__)

PIPELINE = "mongo_documents"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Longer than MongoDB's default transaction lifetime (60 s) plus clock steps between primaries.
OVERLAP = timedelta(minutes=5)
# Key of the advisory lock that lets one load run at a time (any constant bigint).
LOAD_LOCK = 7_311_204_518
LOCK_WAIT_S = 600.0
KEY_FIELDS = {"_id": 1, "version": 1, "content_hash": 1, "deleted_at": 1, STORED_AT: 1}

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
-- The server-assigned mark; a watermark written before it existed rescans everything once.
alter table raw.load_watermarks add column if not exists stored_at timestamptz;
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

# Rows go in document-id order so that concurrent upserts lock rows in one order.
UPSERT = f"""
insert into raw.documents ({", ".join(COLUMNS)})
select {", ".join(COLUMNS)} from batch order by document_id
on conflict (document_id) do update set
    {", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "document_id")},
    loaded_at = now()
where raw.documents.version < excluded.version
   or (raw.documents.version = excluded.version
       and (raw.documents.content_hash is distinct from excluded.content_hash
            or raw.documents.deleted_at is distinct from excluded.deleted_at))
returning (xmax = 0) as inserted
"""

ADVANCE = """
insert into raw.load_watermarks (pipeline, last_changed, last_document_id, stored_at)
values (%(pipeline)s, %(mark)s, %(id)s, %(mark)s)
on conflict (pipeline) do update set
    stored_at = greatest(raw.load_watermarks.stored_at, excluded.stored_at),
    last_changed = greatest(raw.load_watermarks.last_changed, excluded.last_changed),
    last_document_id = excluded.last_document_id,
    updated_at = now()
"""


@dataclass(frozen=True)
class LoadResult:
    """What one extract-load run did.

    `scanned`: document keys compared with the warehouse; `read`: documents read whole because
    they were new or differed; `unchanged`: those that turned out equal after all."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    batches: int = 0
    watermark: str | None = None
    seconds: float = 0.0
    scanned: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema, table and watermark table (idempotent)."""
    conn.execute(DDL)


def read_watermark(conn: psycopg.Connection) -> tuple[datetime, str]:
    """The server-assigned `stored_at` of the last loaded batch's end, and that document's id."""
    row = conn.execute(
        "select stored_at, last_document_id from raw.load_watermarks where pipeline = %s",
        (PIPELINE,),
    ).fetchone()
    return (row[0] or EPOCH, row[1]) if row else (EPOCH, "")


def changed_keys(db: Database, mark: datetime, batch_size: int, overlap: timedelta):
    """Keys of documents stored since `mark - overlap` (and of any never stamped), in store
    order, batch by batch."""
    since = mark - overlap if mark > EPOCH + overlap else EPOCH
    query = {"$or": [{STORED_AT: {"$gte": since}}, {STORED_AT: {"$exists": False}}]}
    cursor = db["documents"].find(query, KEY_FIELDS).sort([(STORED_AT, 1), ("_id", 1)])
    batch: list[dict] = []
    for key in cursor.batch_size(batch_size):
        batch.append(key)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def differing(conn: psycopg.Connection, keys: list[dict]) -> list[str]:
    """Ids of the documents whose key differs from their warehouse row (or that have none)."""
    loaded = {
        row[0]: row[1:]
        for row in conn.execute(
            "select document_id, version, content_hash, deleted_at from raw.documents"
            " where document_id = any(%s)",
            ([k["_id"] for k in keys],),
        )
    }
    conn.commit()
    stale = []
    for key in keys:
        row = loaded.get(key["_id"])
        mongo = (int(key.get("version", 1)), key.get("content_hash"), as_utc(key.get("deleted_at")))
        if row is None or row[0] < mongo[0] or (row[0] == mongo[0] and row[1:] != mongo[1:]):
            stale.append(key["_id"])
    return stale


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


def load_batch(
    conn: psycopg.Connection, docs: list[dict], mark: tuple[datetime, str] | None = None
) -> tuple[int, int]:
    """Load one batch and advance the watermark to `mark` (by default the last document's
    `stored_at` and id), all in one transaction: (inserted, updated)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside an open transaction this would be a savepoint, committed only with the caller's.
        raise RuntimeError("load_batch needs an idle connection: commit or roll back first")
    if mark is None:
        mark = (as_utc(docs[-1].get(STORED_AT)) or EPOCH, docs[-1]["_id"])
    flags: list[bool] = []
    with conn.transaction():
        if docs:
            conn.execute(
                "create temporary table batch (like raw.documents including defaults)"
                " on commit drop"
            )
            with conn.cursor().copy(f"copy batch ({', '.join(COLUMNS)}) from stdin") as copy:
                for doc in docs:
                    copy.write_row(row_of(doc))
            flags = [row[0] for row in conn.execute(UPSERT).fetchall()]
        conn.execute(ADVANCE, {"pipeline": PIPELINE, "mark": as_utc(mark[0]), "id": mark[1]})
    inserted = sum(1 for f in flags if f)
    return inserted, len(flags) - inserted


@contextmanager
def one_load_at_a_time(conn: psycopg.Connection, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the load's advisory lock (a session lock: released when the connection ends)."""
    deadline = time.monotonic() + wait_s
    while not conn.execute("select pg_try_advisory_lock(%s)", (LOAD_LOCK,)).fetchone()[0]:
        conn.commit()
        if time.monotonic() > deadline:
            raise TimeoutError(f"another extract-load still runs after {wait_s:.0f} s of waiting")
        time.sleep(0.2)
    conn.commit()
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("select pg_advisory_unlock(%s)", (LOAD_LOCK,))
            conn.commit()


def extract_load(
    db: Database, conn: psycopg.Connection, batch_size: int = 1000, overlap: timedelta = OVERLAP
) -> LoadResult:
    """Load every document stored since the watermark (minus `overlap`); return what was done."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    began = time.monotonic()
    scanned = read = inserted = updated = batches = 0
    with one_load_at_a_time(conn):
        ensure_raw_schema(conn)  # under the lock: concurrent `create ... if not exists` collide
        conn.commit()
        since = read_watermark(conn)[0]
        conn.commit()
        for keys in changed_keys(db, since, batch_size, overlap):
            stale = differing(conn, keys)
            docs = []
            if stale:
                found = {d["_id"]: d for d in db["documents"].find({"_id": {"$in": stale}})}
                docs = [found[i] for i in stale if i in found]  # order of the scan
            last = keys[-1]
            mark = (as_utc(last.get(STORED_AT)) or EPOCH, last["_id"])
            new, changed = load_batch(conn, docs, mark)
            scanned, read, inserted, updated = (
                scanned + len(keys),
                read + len(docs),
                inserted + new,
                updated + changed,
            )
            batches += 1 if docs else 0
            if docs:
                log.info(
                    "batch %d: %d keys scanned, %d documents read, %d inserted, %d updated",
                    batches,
                    len(keys),
                    len(docs),
                    new,
                    changed,
                )
        mark = read_watermark(conn)[0]
        conn.commit()
    return LoadResult(
        read=read,
        inserted=inserted,
        updated=updated,
        unchanged=read - inserted - updated,
        batches=batches,
        watermark=mark.isoformat() if mark != EPOCH else None,
        seconds=round(time.monotonic() - began, 3),
        scanned=scanned,
    )


def run_extract_load(settings: Settings, batch_size: int = 1000) -> dict:
    """Extract-load with the configured stores (what the `twin_warehouse` DAG calls)."""
    from twin.store.mongo import mongo_client, twin_database
    from twin.store.warehouse import warehouse_connection

    with mongo_client(settings) as client, warehouse_connection(settings) as conn:
        result = extract_load(twin_database(client, settings), conn, batch_size)
    log.info("extract-load: %s", result)
    return result.as_dict()
