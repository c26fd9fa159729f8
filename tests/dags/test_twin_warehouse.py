"""`twin_warehouse` under `dag.test()`: sample author end to end, idempotence, one edit, gates."""

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from sample_author.links import sample_links
from twin.crawl.run import crawl_source, plan_sources
from twin.settings import endpoint_to_connection
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore
from twin.store.warehouse import scratch_database

pytestmark = pytest.mark.integration

DOWNSTREAM_OF_RAW_GATE = ("enrich", "marts_gate", "publish_if_changed")


@pytest.fixture(scope="module")
def warehouse(stack_settings, sample_site):
    """A scratch warehouse DB and Mongo DB holding a crawl of the sample author; the DAG's tasks
    (which read settings and connections from the environment) point at them."""
    with scratch_database(stack_settings.require("warehouse_dsn"), "t") as dsn:
        name = dsn.rsplit("/", 1)[1]
        settings = sample_site.settings(stack_settings, warehouse_dsn=dsn, mongo_database=name)
        links = sample_links(sample_site.base_url)
        for source in plan_sources(settings.author, links, settings):
            crawl_source(source, settings)
        env = {
            "WAREHOUSE_DSN": dsn,
            "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection("warehouse_dsn", dsn),
            "MONGO_DATABASE": name,
            "OBJECT_STORE_URL": settings.object_store_url,
        }
        with pytest.MonkeyPatch.context() as mp:
            for key, value in env.items():
                mp.setenv(key, value)
            yield settings
        with mongo_client(settings) as client:
            client.drop_database(name)


def marts(settings) -> dict[str, tuple]:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        rows = conn.execute("select document_id, clean_hash, updated_at from marts.documents")
        return {r[0]: r[1:] for r in rows.fetchall()}


def test_first_run_builds_the_marts(run_dag, warehouse, sample_site) -> None:
    outcome = run_dag("twin_warehouse")
    assert outcome.state == "success", outcome
    assert outcome.task_states["publish_if_changed"] == "success"
    dbt_tasks = [t for t in outcome.task_states if t.startswith(("transform.", "marts."))]
    # staging and intermediate models build with their tests; the marts' tests run after them all
    assert any(t.startswith("transform.") and t.endswith("_build") for t in dbt_tasks), dbt_tasks
    assert "marts.dbt_test" in dbt_tasks, dbt_tasks
    expected = sample_site.manifest.total_documents - len(sample_site.manifest.near_duplicates)
    assert len(marts(warehouse)) == expected


def test_rerun_with_nothing_new_changes_no_row(run_dag, warehouse) -> None:
    before = marts(warehouse)
    outcome = run_dag("twin_warehouse")
    assert outcome.state == "success", outcome
    assert outcome.task_states["publish_if_changed"] == "skipped"
    assert marts(warehouse) == before


def test_one_edited_document_changes_exactly_one_mart_row(run_dag, warehouse) -> None:
    before = marts(warehouse)
    with mongo_client(warehouse) as client:
        store = RawDocumentStore(twin_database(client, warehouse))
        doc = store.documents.find_one({"platform": "medium"})
        store.documents.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "text": doc["text"] + "\n\nOne more thought: measure first.",
                    "content_hash": uuid.uuid4().hex,
                    "last_changed": datetime.now(UTC),
                }
            },
        )
    outcome = run_dag("twin_warehouse")
    after = marts(warehouse)

    assert outcome.state == "success", outcome
    assert set(after) == set(before)
    assert [k for k in after if after[k] != before[k]] == [doc["_id"]]


def test_bad_raw_data_stops_the_run_at_the_raw_gate(run_dag, warehouse) -> None:
    with mongo_client(warehouse) as client:
        docs = twin_database(client, warehouse)["documents"]
        bad = dict(docs.find_one({"platform": "blog"}))
        bad.update(
            _id=uuid.uuid4().hex[:32],
            url=f"https://example.org/{uuid.uuid4().hex}",
            platform="tiktok",
            last_changed=datetime.now(UTC),
        )
        docs.insert_one(bad)
    try:
        outcome = run_dag("twin_warehouse")
    finally:
        with mongo_client(warehouse) as client:
            twin_database(client, warehouse)["documents"].delete_one({"_id": bad["_id"]})
        with psycopg.connect(warehouse.require("warehouse_dsn"), autocommit=True) as conn:
            conn.execute("delete from raw.documents where document_id = %s", (bad["_id"],))

    assert outcome.state == "failed"
    assert outcome.task_states["raw_gate"] == "failed"
    for task_id in DOWNSTREAM_OF_RAW_GATE:
        assert outcome.task_states[task_id] == "upstream_failed", task_id
    with psycopg.connect(warehouse.require("warehouse_dsn")) as conn:
        failures = conn.execute(
            "select failures from quality.validation_results where gate = 'raw_documents' "
            "order by validated_at desc limit 1"
        ).fetchone()[0]
    assert "platform" in json.dumps(failures)


def test_pii_surviving_into_marts_stops_the_run_at_the_marts_gate(run_dag, warehouse) -> None:
    with psycopg.connect(warehouse.require("warehouse_dsn"), autocommit=True) as conn:
        row = conn.execute("select document_id from marts.documents limit 1").fetchone()[0]
        conn.execute(
            "update marts.documents set body = body || ' mail me: ada@example.org' "
            "where document_id = %s",
            (row,),
        )
    # dbt is not run, so the marts keep the injected row when the gate reads them
    outcome = run_dag("twin_warehouse", mark_success=r"(transform|marts)\..*")

    assert outcome.state == "failed"
    assert outcome.task_states["marts_gate"] == "failed"
    assert outcome.task_states["publish_if_changed"] == "upstream_failed"
