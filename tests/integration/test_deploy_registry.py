"""The MLflow side of deployments on the test stack's real MLflow, and the deployment records in
its real Postgres: preflight, promotion, rollback, idempotence, and the reconcile of aliases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.integration.deploy_support import (
    fresh_name,
    passed,
    register_versions,
    tiny_llama_folder,
)
from twin.deploy import registry
from twin.domain.models import CHALLENGER, CHAMPION, ReviewState, VersionTag
from twin.settings import Settings
from twin.store import deployments as store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registered(stack_settings: Settings, tmp_path_factory):
    """Five versions: passed, passed+approved, rejected, failed evaluation, passed."""
    from twin.store.tracking import tracking_client

    name = fresh_name()
    folder = tiny_llama_folder(tmp_path_factory.mktemp("models"))
    versions = register_versions(
        stack_settings,
        folder,
        name,
        [
            passed(),
            passed(review=ReviewState.APPROVED),
            passed(review=ReviewState.REJECTED, review_note="reads like a press release"),
            {VersionTag.EVALUATION_PASSED: "false", VersionTag.REVIEW: "approved"},
            passed(),
        ],
    )
    client = tracking_client(stack_settings)
    yield client, name, versions
    client.delete_registered_model(name)


def test_preflight_names_each_refusal(registered) -> None:
    client, name, (v1, v2, v3, v4, _) = registered

    assert registry.preflight(client, name, v1, require_approval=False).version == v1
    assert registry.preflight(client, name, v2, require_approval=True).version == v2
    with pytest.raises(registry.PreflightError, match="rejected in review: reads like"):
        registry.preflight(client, name, v3, require_approval=False)
    with pytest.raises(registry.PreflightError, match="not passed its evaluation"):
        registry.preflight(client, name, v4, require_approval=False)
    with pytest.raises(registry.PreflightError, match="needs review=approved"):
        registry.preflight(client, name, v1, require_approval=True)
    with pytest.raises(registry.PreflightError, match="does not exist"):
        registry.preflight(client, name, "999", require_approval=False)


def test_promote_moves_champion_and_tags_the_old_one_idempotently(registered) -> None:
    client, name, (v1, v2, *_rest) = registered

    assert registry.promote(client, name, v1, "first deployment") is None
    registry.mark_challenger(client, name, v2)
    assert registry.alias_version(client, name, CHALLENGER) == v2
    previous = registry.promote(client, name, v2, "all checks passed")
    again = registry.promote(client, name, v2, "all checks passed")

    old = client.get_model_version(name, v1).tags
    new = client.get_model_version(name, v2).tags
    assert previous == v1 and again is None
    assert registry.alias_version(client, name, CHAMPION) == v2
    assert registry.alias_version(client, name, CHALLENGER) is None
    assert old[VersionTag.DEPLOYMENT] == "retired" and old[registry.TAG_REPLACED_BY] == v2
    assert new[VersionTag.DEPLOYMENT] == "champion"


def test_roll_back_removes_challenger_alias_tags_reason_and_keeps_champion(registered) -> None:
    client, name, versions = registered
    v5 = versions[4]
    champion = registry.alias_version(client, name, CHAMPION)
    registry.mark_challenger(client, name, v5)

    registry.roll_back(client, name, v5, "latency p95 ratio 10.2 (max 2.0)")
    registry.roll_back(client, name, v5, "a second call changes nothing")

    tags = client.get_model_version(name, v5).tags
    assert registry.alias_version(client, name, CHALLENGER) is None
    assert registry.alias_version(client, name, CHAMPION) == champion
    assert tags[VersionTag.DEPLOYMENT] == "rolled_back"
    assert tags[registry.TAG_DEPLOYMENT_REASON] == "latency p95 ratio 10.2 (max 2.0)"


def test_deployment_record_compare_and_set_and_alerts(scratch_warehouse: Settings) -> None:
    from twin.store.warehouse import warehouse_connection

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with warehouse_connection(scratch_warehouse, autocommit=True) as conn:
        store.ensure_schema(conn)
        store.ensure_schema(conn)  # idempotent
        row, created = store.plan_deployment(
            conn,
            "m",
            3,
            state="planned",
            previous_champion="2",
            thresholds={"a": 1},
            run_id="r1",
            now=now,
        )
        again, created_again = store.plan_deployment(
            conn,
            "m",
            3,
            state="planned",
            previous_champion="9",
            thresholds={},
            run_id="r2",
            now=now,
        )
        moved = store.advance(conn, row, ["planned"], "preflight_ok", now=now, figures={"x": 1.5})
        stale = store.advance(conn, row, ["planned"], "loaded", now=now)
        alert = store.Alert(
            "twin_monitor", "query_drift", "warning", "psi 0.4", {"psi": 0.4}, now, now
        )
        first, second = store.record_alert(conn, alert), store.record_alert(conn, alert)

        assert created and not created_again and again.previous_champion == "2"
        assert moved.state == "preflight_ok" and moved.figures == {"x": 1.5}
        assert [h["state"] for h in moved.history] == ["planned", "preflight_ok"]
        assert stale is None
        assert (first, second) == (True, False)
        assert len(store.list_alerts(conn)) == 1


def test_deployment_tables_are_created_by_concurrent_runs_without_deadlock(
    scratch_warehouse: Settings,
) -> None:
    """Deployments that start together each ensure the serving schema on a fresh database:
    none may fail (unserialised, the DDL deadlocks or collides on the new tables' names)."""
    import threading

    import psycopg

    dsn = scratch_warehouse.require("warehouse_dsn")
    errors: list[str] = []

    def run(barrier: threading.Barrier) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(20):
                barrier.wait()
                try:
                    store.ensure_schema(conn)
                except psycopg.Error as err:
                    errors.append(type(err).__name__)

    barrier = threading.Barrier(3)
    threads = [threading.Thread(target=run, args=(barrier,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with psycopg.connect(dsn) as conn:
        found = conn.execute("select to_regclass('serving.deployments')").fetchone()[0]
    assert found is not None
