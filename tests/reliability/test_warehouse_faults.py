"""The extract-load under faults, on a stack of its own: MongoDB or Postgres killed with SIGKILL in
the middle of a load, and two loads at once. After a restart and a rerun every raw document is in
the warehouse exactly once: 0 lost, 0 duplicated."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psutil
import psycopg
import pytest

from tests.conftest import PROJECT_ROOT, scratch_home
from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.settings import Settings, load_settings
from twin.stack import Stack
from twin.store.extract_load import extract_load
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore

pytestmark = pytest.mark.integration

BATCH = 100
LOAD = f"""
from twin.settings import load_settings
from twin.store.extract_load import run_extract_load
print(run_extract_load(load_settings(), batch_size={BATCH}))
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Stack, Settings]]:
    home = scratch_home("twin-faults-")
    stack = Stack(home, ("postgres", "mongo"))
    try:
        stack.up()
        # this stack's own endpoints, even when the session exported another stack's
        endpoints = stack.endpoints()
        settings = load_settings(home).model_copy(
            update={
                "mongo_uri": endpoints["MONGO_URI"],
                "warehouse_dsn": endpoints["WAREHOUSE_DSN"],
                "mongo_database": "twin",
            }
        )
        yield stack, settings
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def documents(start: int, count: int) -> list[RawDocument]:
    text = "Exactly-once loads survive crashes when batches commit with their watermark. " * 12
    return [
        RawDocument(
            url=f"https://faults.example/{n}",
            platform=Platform.BLOG,
            kind=DocumentKind.ARTICLE,
            author="Ada Lindqvist",
            title=f"Fault {n}",
            text=f"{text} #{n}",
            published_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for n in range(start, start + count)
    ]


def write(settings: Settings, docs: list[RawDocument]) -> None:
    with mongo_client(settings) as client:
        store = RawDocumentStore(twin_database(client, settings))
        store.ensure_indexes()
        for i in range(0, len(docs), 500):
            store.upsert(docs[i : i + 500])


def start_load(stack: Stack) -> subprocess.Popen:
    env = {**os.environ, **stack.endpoints(), "TWIN_HOME": str(stack.home)}
    return subprocess.Popen(
        [sys.executable, "-c", LOAD],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def loaded_rows(settings: Settings) -> int:
    with psycopg.connect(settings.require("warehouse_dsn"), connect_timeout=5) as conn:
        if conn.execute("select to_regclass('raw.documents')").fetchone()[0] is None:
            return 0
        return conn.execute("select count(*) from raw.documents").fetchone()[0]


def wait_for_rows(settings: Settings, child: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 120
    rows = 0
    while time.monotonic() < deadline and child.poll() is None:
        rows = loaded_rows(settings)
        if rows >= at_least:
            return rows
        time.sleep(0.02)
    raise AssertionError(f"the load ended or stalled at {rows} rows before the kill")


def kill_service(stack: Stack, name: str) -> None:
    """SIGKILL the service's whole process group (server and its workers)."""
    pid = stack.services[name].process.record().pid
    os.killpg(pid, signal.SIGKILL)
    psutil.Process(pid).wait(10)


def assert_exactly_once(settings: Settings) -> int:
    with mongo_client(settings) as client:
        wanted = {
            d["_id"] for d in twin_database(client, settings)["documents"].find({}, {"_id": 1})
        }
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        rows = [r[0] for r in conn.execute("select document_id from raw.documents")]
    lost = wanted - set(rows)
    duplicated = len(rows) - len(set(rows))
    extra = set(rows) - wanted
    assert (len(lost), duplicated, len(extra)) == (0, 0, 0)
    return len(rows)


def rerun(settings: Settings):
    with (
        mongo_client(settings) as client,
        psycopg.connect(settings.require("warehouse_dsn")) as conn,
    ):
        return extract_load(twin_database(client, settings), conn, batch_size=BATCH)


@pytest.mark.parametrize("victim", ["mongo", "postgres"])
def test_a_server_killed_mid_load_loses_and_duplicates_nothing(stack, victim: str) -> None:
    stack_, settings = stack
    before = loaded_rows(settings)
    write(settings, documents(100_000 if victim == "mongo" else 200_000, 4000))

    child = start_load(stack_)
    wait_for_rows(settings, child, before + 3 * BATCH)
    kill_service(stack_, victim)
    child.wait(120)
    restarted = stack_.up()
    partial = loaded_rows(settings) - before  # what survived the crash: whole batches only
    result = rerun(settings)

    assert child.returncode != 0, "the load should have died with its server"
    assert victim in restarted.started
    assert 0 < partial < 4000 and partial % BATCH == 0
    assert result.inserted == 4000 - partial  # the rest, and nothing twice
    assert assert_exactly_once(settings) == before + 4000


def test_two_loads_at_once_load_each_document_once(stack) -> None:
    stack_, settings = stack
    before = loaded_rows(settings)
    write(settings, documents(300_000, 3000))

    loads = [start_load(stack_) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in loads]

    assert [p.returncode for p in loads] == [0, 0], [o[1][-1500:] for o in outputs]
    inserted = [int(out.split("'inserted': ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(inserted) == 3000 and min(inserted) == 0  # the second waited, then found nothing
    assert assert_exactly_once(settings) == before + 3000
