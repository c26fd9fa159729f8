"""Incremental Mongo → Postgres extract-load: idempotent, incremental, crash-safe."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT
from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.store.extract_load import extract_load, read_watermark
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore

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
    ordered = list(db["documents"].find().sort([("last_changed", 1), ("_id", 1)]))
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
