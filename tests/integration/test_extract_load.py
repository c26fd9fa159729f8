"""Incremental Mongo → Postgres extract-load: idempotent, incremental, crash-safe."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT
from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.store.extract_load import extract_load, read_watermark
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore, document_id

pytestmark = pytest.mark.integration


def doc(n: int, text: str = "Idempotent loads let you sleep at night.") -> RawDocument:
    return RawDocument(
        url=f"https://example.org/{n}",
        platform=Platform.BLOG,
        kind=DocumentKind.ARTICLE,
        author="Ada Lindqvist",
        title=f"Article {n}",
        text=f"{text} #{n}",
        published_at=datetime(2024, 1, 1, tzinfo=UTC),
        source_url="https://example.org/sitemap.xml",
    )


@pytest.fixture
def stores(scratch_warehouse):
    with (
        mongo_client(scratch_warehouse) as client,
        psycopg.connect(scratch_warehouse.require("warehouse_dsn")) as conn,
    ):
        db = twin_database(client, scratch_warehouse)
        raw = RawDocumentStore(db)
        raw.ensure_indexes()
        yield scratch_warehouse, db, raw, conn


def rows(conn) -> dict[str, tuple]:
    found = conn.execute("select document_id, content_hash, deleted_at from raw.documents")
    return {r[0]: r[1:] for r in found.fetchall()}


def test_full_load_then_nothing_then_exactly_the_change(stores) -> None:
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(250)])

    first = extract_load(db, conn, batch_size=100)
    loaded_at = dict(conn.execute("select document_id, loaded_at from raw.documents").fetchall())
    second = extract_load(db, conn, batch_size=100)
    raw.upsert([doc(7, "Edited.")])
    third = extract_load(db, conn, batch_size=100)

    assert (first.read, first.inserted, first.batches) == (250, 250, 3)
    assert (second.read, second.inserted, second.updated) == (0, 0, 0)
    assert second.scanned == 250  # all within the overlap window: keys compared, none read
    assert (third.read, third.inserted, third.updated) == (1, 0, 1)
    after = dict(conn.execute("select document_id, loaded_at from raw.documents").fetchall())
    changed = {k for k in after if after[k] != loaded_at[k]}
    assert len(after) == 250 and len(changed) == 1
    payload = conn.execute(
        "select payload->>'text' from raw.documents where url = %s", (doc(7).url,)
    ).fetchone()[0]
    assert payload == "Edited. #7"


def test_deleted_documents_are_marked_in_the_warehouse(stores) -> None:
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(5)])
    extract_load(db, conn)
    raw.mark_missing("https://example.org/sitemap.xml", {doc(0).url, doc(1).url})

    result = extract_load(db, conn)

    deleted = [k for k, (_, when) in rows(conn).items() if when is not None]
    assert result.updated == 3 and len(deleted) == 3 and len(rows(conn)) == 5


def test_a_failing_batch_rolls_back_whole_and_the_retry_completes(stores) -> None:
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(30)])
    ordered = list(db["documents"].find().sort([("stored_at", 1), ("_id", 1)]))
    broken = ordered[25]  # in the third batch of 10
    db["documents"].update_one({"_id": broken["_id"]}, {"$unset": {"content_hash": ""}})

    with pytest.raises(KeyError):
        extract_load(db, conn, batch_size=10)
    conn.rollback()

    assert len(rows(conn)) == 20  # two whole batches, nothing of the third
    assert read_watermark(conn)[1] == ordered[19]["_id"]
    db["documents"].update_one(
        {"_id": broken["_id"]}, {"$set": {"content_hash": broken["content_hash"]}}
    )
    retry = extract_load(db, conn, batch_size=10)
    assert retry.read == 10 and len(rows(conn)) == 30


KILLED_LOAD = """
import sys
from twin.settings import load_settings
from twin.store.extract_load import run_extract_load
settings = load_settings().model_copy(update={"warehouse_dsn": sys.argv[1],
                                              "mongo_database": sys.argv[2]})
run_extract_load(settings, batch_size=int(sys.argv[3]))
"""


def test_a_load_killed_mid_way_and_rerun_leaves_no_duplicates(stores) -> None:
    settings, db, raw, conn = stores
    total = 3000
    raw.upsert([doc(n, "A longer body so that batches take a moment. " * 20) for n in range(total)])
    dsn = settings.require("warehouse_dsn")
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOAD, dsn, settings.mongo_database, "200"],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 60
    loaded = 0
    while time.monotonic() < deadline and child.poll() is None:
        with psycopg.connect(dsn) as probe:
            exists = probe.execute("select to_regclass('raw.documents')").fetchone()[0]
            loaded = (
                probe.execute("select count(*) from raw.documents").fetchone()[0] if exists else 0
            )
        if loaded >= 600:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    conn.rollback()
    partial = len(rows(conn))

    rerun = extract_load(db, conn, batch_size=200)

    assert 0 < partial < total, "the kill should land mid-load"
    assert partial % 200 == 0, "only whole batches are ever committed"
    assert len(rows(conn)) == total
    assert rerun.read == total - partial and rerun.inserted == total - partial
    dupes = conn.execute("select count(*) - count(distinct url) from raw.documents").fetchone()[0]
    assert dupes == 0


def warehouse_state(conn) -> dict[str, tuple]:
    found = conn.execute("select document_id, content_hash, version, deleted_at from raw.documents")
    return {r[0]: r[1:] for r in found.fetchall()}


def mongo_state(db) -> dict[str, tuple]:
    keys = {"content_hash": 1, "version": 1, "deleted_at": 1}
    return {
        d["_id"]: (d["content_hash"], d["version"], d["deleted_at"])
        for d in db["documents"].find({}, keys)
    }


def assert_in_step(db, conn) -> None:
    """Every Mongo document once in the warehouse, at its latest version; nothing else."""
    conn.rollback()
    dupes = conn.execute("select count(*) - count(distinct url) from raw.documents").fetchone()[0]
    pg = {
        k: (h, v, d.replace(tzinfo=None) if d else None)
        for k, (h, v, d) in warehouse_state(conn).items()
    }
    mongo = {
        k: (h, v, d.replace(tzinfo=None) if d else None) for k, (h, v, d) in mongo_state(db).items()
    }
    lost = set(mongo) - set(pg)
    stale = {k for k in mongo if k in pg and pg[k] != mongo[k]}
    assert (dupes, len(lost), len(stale), len(set(pg) - set(mongo))) == (0, 0, 0, 0)


def test_a_back_dated_write_after_a_load_is_loaded_by_the_next(stores) -> None:
    """A worker whose clock is a year behind writes after a load ran: its document is loaded."""
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(10)])
    extract_load(db, conn)
    skewed = datetime(2020, 1, 1, tzinfo=UTC)  # far older than the watermark and the overlap

    raw.upsert([doc(10), doc(3, "Rewritten by a skewed worker.")], now=skewed)
    result = extract_load(db, conn)

    assert (result.inserted, result.updated) == (1, 1)
    assert_in_step(db, conn)


def test_a_write_that_commits_after_a_later_load_is_still_loaded(stores) -> None:
    """Stamped before a load, committed after it (a slow transaction): the overlap catches it."""
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(5)])
    client = db.client
    with client.start_session() as session:
        session.start_transaction()
        raw_in_txn = db["documents"]
        raw_in_txn.update_one(
            {"_id": document_id(doc(2).url)},
            {
                "$set": {"content_hash": "late", "text": "late"},
                "$inc": {"version": 1},
                "$currentDate": {"stored_at": True},
            },
            session=session,
        )
        time.sleep(0.05)
        raw.upsert([doc(5)])  # committed now, stamped after the transaction's write
        before = extract_load(db, conn)  # sees doc 5, not the uncommitted write
        session.commit_transaction()
    after = extract_load(db, conn)

    assert before.inserted == 6 and after.updated == 1
    assert_in_step(db, conn)


def test_concurrent_writers_and_loads_lose_and_duplicate_nothing(stores) -> None:
    """Writers (one with a skewed clock) race two loaders; a final load leaves Mongo and the
    warehouse in step: 0 lost, 0 duplicated, 0 stale rows."""
    settings, db, raw, conn = stores
    dsn = settings.require("warehouse_dsn")
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(offset: int, clock: datetime | None) -> None:
        try:
            for n in range(60):
                raw.upsert([doc(offset + n), doc(offset + (n * 7) % 60, f"edit {n}")], now=clock)
        except BaseException as exc:
            errors.append(exc)

    def loader() -> None:
        try:
            with psycopg.connect(dsn) as own:
                while not stop.is_set():
                    extract_load(db, own, batch_size=17)
        except BaseException as exc:
            errors.append(exc)

    writers = [
        threading.Thread(target=writer, args=(0, None)),
        threading.Thread(target=writer, args=(1000, datetime(2019, 5, 1, tzinfo=UTC))),
    ]
    loaders = [threading.Thread(target=loader) for _ in range(2)]
    for t in (*loaders, *writers):
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    for t in loaders:
        t.join(120)
    extract_load(db, conn, batch_size=17)

    assert not errors, errors
    assert db["documents"].count_documents({}) == 120
    assert_in_step(db, conn)
