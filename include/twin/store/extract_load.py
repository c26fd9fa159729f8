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

A document Postgres refuses (a NUL byte in its text, a URL another document already holds) would
roll its batch back on every run and stop the warehouse for good. When a batch is refused for its
data, it is loaded again one document at a time, each in a savepoint: the refused ones go to
`raw.quarantine` with Postgres' reason, the others land, and the watermark advances. A
quarantined document is not tried again until it changes (a new version, content hash or
deletion mark); once it loads, its quarantine row goes. `twin warehouse-summary` lists them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from pymongo.database import Database

from twin.settings import Settings
from twin.store.mongo import find_in
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
-- Documents Postgres refused, with its reason; the key says which state of them was refused.
create table if not exists raw.quarantine (
    document_id     text primary key,
    url             text,
    platform        text,
    version         integer not null,
    content_hash    text,
    deleted_at      timestamptz,
    reason          text not null,
    quarantined_at  timestamptz not null default now()
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

QUARANTINE = """
insert into raw.quarantine (document_id, url, platform, version, content_hash, deleted_at, reason)
values (%s, %s, %s, %s, %s, %s, %s)
on conflict (document_id) do update set
    url = excluded.url,
    platform = excluded.platform,
    version = excluded.version,
    content_hash = excluded.content_hash,
    deleted_at = excluded.deleted_at,
    reason = excluded.reason,
    quarantined_at = now()
where (raw.quarantine.version, raw.quarantine.content_hash, raw.quarantine.deleted_at)
      is distinct from (excluded.version, excluded.content_hash, excluded.deleted_at)
"""
# What Postgres refuses a row for (bad text or value, a broken constraint); a lost connection
# or a cancelled statement is no fault of the row and fails the load instead.
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError)

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
    they were new or differed; `unchanged`: those that turned out equal after all;
    `quarantined`: documents Postgres refused in this run (kept in `raw.quarantine`)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    batches: int = 0
    watermark: str | None = None
    seconds: float = 0.0
    scanned: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class BatchLoad:
    """What one batch did: rows inserted and updated, documents quarantined."""

    inserted: int = 0
    updated: int = 0
    quarantined: int = 0


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema, the documents, watermark and quarantine tables (idempotent)."""
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
    """Ids of the documents whose key differs from their warehouse row (or that have none),
    less those quarantined in the very state they are in now."""
    ids = ([k["_id"] for k in keys],)
    key_columns = "select document_id, version, content_hash, deleted_at from"
    loaded = {
        row[0]: row[1:]
        for row in conn.execute(f"{key_columns} raw.documents where document_id = any(%s)", ids)
    }
    refused = {
        row[0]: row[1:]
        for row in conn.execute(f"{key_columns} raw.quarantine where document_id = any(%s)", ids)
    }
    conn.commit()
    stale = []
    for key in keys:
        row = loaded.get(key["_id"])
        mongo = (int(key.get("version", 1)), key.get("content_hash"), as_utc(key.get("deleted_at")))
        if refused.get(key["_id"]) == mongo:
            continue  # Postgres refused this very state: tried again once the document changes
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
) -> BatchLoad:
    """Load one batch and advance the watermark to `mark` (by default the last document's
    `stored_at` and id), all in one transaction.

    When Postgres refuses the batch for a row's data, the batch is loaded again one document at
    a time: the refused documents are quarantined (see the module docstring), the others land.
    """
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        # Inside an open transaction this would be a savepoint, committed only with the caller's.
        raise RuntimeError("load_batch needs an idle connection: commit or roll back first")
    if mark is None:
        mark = (as_utc(docs[-1].get(STORED_AT)) or EPOCH, docs[-1]["_id"])
    try:
        with conn.transaction():
            flags = _upsert(conn, docs) if docs else []
            _loaded(conn, docs)
            conn.execute(ADVANCE, {"pipeline": PIPELINE, "mark": as_utc(mark[0]), "id": mark[1]})
        return _counted(flags)
    except ROW_ERRORS as exc:
        log.warning(
            "batch refused (%s): loading its %d documents one by one", _reason(exc), len(docs)
        )
    with conn.transaction():
        written: list[bool] = []
        refused: set[str] = set()
        for doc in sorted(docs, key=lambda d: d["_id"]):
            try:
                with conn.transaction():  # a savepoint: a refused row undoes itself only
                    written += _upsert(conn, [doc])
            except ROW_ERRORS as exc:
                refused.add(doc["_id"])
                _quarantine(conn, doc, _reason(exc, doc))
        _loaded(conn, [d for d in docs if d["_id"] not in refused])
        conn.execute(ADVANCE, {"pipeline": PIPELINE, "mark": as_utc(mark[0]), "id": mark[1]})
    counted = _counted(written)
    return BatchLoad(counted.inserted, counted.updated, len(refused))


def _upsert(conn: psycopg.Connection, docs: list[dict]) -> list[bool]:
    """COPY `docs` into the transaction's temporary table, upsert it into `raw.documents`;
    one flag per row written (True: inserted)."""
    conn.execute(
        "create temporary table if not exists batch"
        " (like raw.documents including defaults) on commit drop"
    )
    conn.execute("truncate batch")
    with conn.cursor().copy(f"copy batch ({', '.join(COLUMNS)}) from stdin") as copy:
        for doc in docs:
            copy.write_row(row_of(doc))
    return [row[0] for row in conn.execute(UPSERT).fetchall()]


def _counted(flags: list[bool]) -> BatchLoad:
    inserted = sum(1 for f in flags if f)
    return BatchLoad(inserted, len(flags) - inserted)


def _loaded(conn: psycopg.Connection, docs: list[dict]) -> None:
    """Documents that loaded are out of quarantine, if they were in it."""
    if docs:
        ids = [d["_id"] for d in docs]
        conn.execute("delete from raw.quarantine where document_id = any(%s)", (ids,))


def _quarantine(conn: psycopg.Connection, doc: dict, reason: str) -> None:
    """Record `doc` as refused for `reason` (its state: version, content hash, deletion mark)."""
    conn.execute(
        QUARANTINE,
        (
            _printable(doc["_id"]),
            _printable(doc.get("url")),
            _printable(doc.get("platform")),
            int(doc.get("version", 1)),
            _printable(doc.get("content_hash")),
            as_utc(doc.get("deleted_at")),
            reason,
        ),
    )
    log.warning("document %s (%s) quarantined: %s", doc["_id"], doc.get("url"), reason)


def _reason(exc: psycopg.Error, doc: dict | None = None) -> str:
    """Why Postgres (or psycopg, before sending) refused a row, with the column when known;
    never the row's data, which the full error context may quote."""
    diag = exc.diag
    message = diag.message_primary or (str(exc).splitlines() or [""])[0]
    detail = f": {diag.message_detail}" if diag.message_detail else ""
    column = diag.column_name or _copy_column(diag.context or "") or _nul_column(doc)
    where = f" (column {column})" if column else ""
    return _printable(f"{type(exc).__name__}: {message}{detail}{where}") or type(exc).__name__


def _copy_column(context: str) -> str | None:
    match = re.search(r"COPY \w+, line \d+, column (\w+)", context)
    return match.group(1) if match else None


def _nul_column(doc: dict | None) -> str | None:
    """The first text column of `doc`'s row that holds a NUL (psycopg refuses those itself)."""
    if doc is None:
        return None
    values = row_of(doc)
    return next(
        (c for c, v in zip(COLUMNS, values, strict=True) if isinstance(v, str) and "\x00" in v),
        None,
    )


def _printable(value: object) -> str | None:
    """`value` as text Postgres accepts (a NUL written as `\\x00`), or None."""
    return None if value is None else str(value).replace("\x00", "\\x00")


def quarantine_report(conn: psycopg.Connection, limit: int = 20) -> str | None:
    """What `twin warehouse-summary` shows of `raw.quarantine`: how many documents the load
    refused, then the latest `limit` with URL and reason; None when there are none."""
    if conn.execute("select to_regclass('raw.quarantine')").fetchone()[0] is None:
        return None
    total = conn.execute("select count(*) from raw.quarantine").fetchone()[0]
    if not total:
        return None
    rows = conn.execute(
        "select document_id, url, reason, quarantined_at from raw.quarantine"
        " order by quarantined_at desc, document_id limit %s",
        (limit,),
    ).fetchall()
    lines = [f"{total} document(s) refused by the warehouse load, kept in raw.quarantine:"]
    lines += [
        f"  {when:%Y-%m-%d %H:%M:%S} {url or document_id}: {reason}"
        for document_id, url, reason, when in rows
    ]
    if total > limit:
        lines.append(f"  ... and {total - limit} more")
    return "\n".join(lines)


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
    scanned = read = inserted = updated = batches = quarantined = 0
    with one_load_at_a_time(conn):
        ensure_raw_schema(conn)  # under the lock: concurrent `create ... if not exists` collide
        conn.commit()
        since = read_watermark(conn)[0]
        conn.commit()
        for keys in changed_keys(db, since, batch_size, overlap):
            stale = differing(conn, keys)
            docs = []
            if stale:
                found = {d["_id"]: d for d in find_in(db["documents"], "_id", stale)}
                docs = [found[i] for i in stale if i in found]  # order of the scan
            last = keys[-1]
            mark = (as_utc(last.get(STORED_AT)) or EPOCH, last["_id"])
            done = load_batch(conn, docs, mark)
            scanned, read, inserted, updated, quarantined = (
                scanned + len(keys),
                read + len(docs),
                inserted + done.inserted,
                updated + done.updated,
                quarantined + done.quarantined,
            )
            batches += 1 if docs else 0
            if docs:
                log.info(
                    "batch %d: %d keys scanned, %d documents read, %d inserted, %d updated, "
                    "%d quarantined",
                    batches,
                    len(keys),
                    len(docs),
                    done.inserted,
                    done.updated,
                    done.quarantined,
                )
        mark = read_watermark(conn)[0]
        conn.commit()
    return LoadResult(
        read=read,
        inserted=inserted,
        updated=updated,
        unchanged=read - inserted - updated - quarantined,
        batches=batches,
        watermark=mark.isoformat() if mark != EPOCH else None,
        seconds=round(time.monotonic() - began, 3),
        scanned=scanned,
        quarantined=quarantined,
    )


def run_extract_load(settings: Settings, batch_size: int = 1000) -> dict:
    """Extract-load with the configured stores (what the `twin_warehouse` DAG calls)."""
    from twin.store.mongo import mongo_client, twin_database
    from twin.store.warehouse import warehouse_connection

    with mongo_client(settings) as client, warehouse_connection(settings) as conn:
        result = extract_load(twin_database(client, settings), conn, batch_size)
    log.info("extract-load: %s", result)
    return result.as_dict()
