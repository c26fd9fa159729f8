"""A document Postgres refuses never stops the warehouse: it is quarantined, the rest load.

Poisoned documents are written straight into MongoDB (as a store written by other code, or
before the crawler stripped NUL bytes, would hold them), then the real extract-load runs
against the real Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.store.extract_load import extract_load, read_watermark
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore

pytestmark = pytest.mark.integration


def doc(n: int) -> RawDocument:
    return RawDocument(
        url=f"https://example.org/q/{n}",
        platform=Platform.BLOG,
        kind=DocumentKind.ARTICLE,
        author="Ada Lindqvist",
        title=f"Article {n}",
        text=f"Loads that survive bad rows #{n}",
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


def loaded(conn) -> set[str]:
    return {r[0] for r in conn.execute("select url from raw.documents").fetchall()}


def quarantine(conn) -> list[tuple]:
    return conn.execute(
        "select document_id, url, version, content_hash, reason, quarantined_at"
        " from raw.quarantine order by document_id"
    ).fetchall()


def test_a_poisoned_document_is_quarantined_and_the_rest_of_its_batch_loads(stores) -> None:
    _, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(12)])
    ordered = list(db["documents"].find().sort([("stored_at", 1), ("_id", 1)]))
    text_nul, meta_nul = ordered[3], ordered[8]  # both in the first batch of 10
    db["documents"].update_one({"_id": text_nul["_id"]}, {"$set": {"text": "bad\x00text"}})
    db["documents"].update_one({"_id": meta_nul["_id"]}, {"$set": {"metadata.k": "v\x00"}})

    first = extract_load(db, conn, batch_size=10)
    conn.commit()

    poisoned = {text_nul["url"], meta_nul["url"]}
    assert loaded(conn) == {d.url for d in map(doc, range(12))} - poisoned
    assert (first.inserted, first.quarantined, first.unchanged) == (10, 2, 0)
    held = quarantine(conn)
    assert {row[1] for row in held} == poisoned
    reasons = {row[1]: row[4] for row in held}
    assert "0x00" in reasons[text_nul["url"]] and "column content" in reasons[text_nul["url"]]
    assert "\\u0000" in reasons[meta_nul["url"]]  # jsonb refuses the escaped NUL
    assert "column payload" in reasons[meta_nul["url"]]
    assert read_watermark(conn)[1] == ordered[-1]["_id"]  # the load went past them

    second = extract_load(db, conn, batch_size=10)
    conn.commit()

    assert (second.read, second.inserted, second.updated, second.quarantined) == (0, 0, 0, 0)
    assert quarantine(conn) == held  # not retried, not stamped again

    db["documents"].update_one(
        {"_id": text_nul["_id"]}, {"$set": {"text": "fixed text", "content_hash": "fixed"}}
    )
    third = extract_load(db, conn, batch_size=10)
    conn.commit()

    assert (third.read, third.inserted, third.quarantined) == (1, 1, 0)
    assert text_nul["url"] in loaded(conn)
    assert [row[1] for row in quarantine(conn)] == [meta_nul["url"]]


def test_warehouse_summary_lists_the_quarantined_documents(stores, monkeypatch) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    settings, db, raw, conn = stores
    raw.upsert([doc(n) for n in range(3)])
    poisoned = db["documents"].find_one({"url": doc(1).url})
    db["documents"].update_one({"_id": poisoned["_id"]}, {"$set": {"title": "T\x00"}})
    extract_load(db, conn)
    # the tables the summary reads besides the quarantine, empty: dbt has not run here
    conn.execute(
        "create schema marts; create schema quality;"
        " create table marts.documents (platform text, word_count integer);"
        " create table marts.near_duplicates (document_id text);"
        " create table quality.validation_results (gate text, success boolean,"
        " evaluated integer, failed_count integer, row_count integer, validated_at timestamptz)"
    )
    conn.commit()
    monkeypatch.setenv("WAREHOUSE_DSN", settings.warehouse_dsn)

    result = CliRunner().invoke(app, ["warehouse-summary"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "1 document(s) refused by the warehouse load" in result.output
    line = next(line for line in result.output.splitlines() if doc(1).url in line)
    assert "0x00" in line
