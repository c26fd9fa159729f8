"""`twin deployments` lists recorded decisions with their figures, from the real warehouse."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.settings import Settings
from twin.store import deployments as store

pytestmark = pytest.mark.integration


def test_deployments_table_and_json(scratch_warehouse: Settings, monkeypatch) -> None:
    from twin.store.warehouse import warehouse_connection

    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with warehouse_connection(scratch_warehouse, autocommit=True) as conn:
        store.ensure_schema(conn)
        row, _ = store.plan_deployment(
            conn,
            "twin-llm",
            4,
            state="checked",
            previous_champion="3",
            thresholds={},
            run_id=None,
            now=now,
        )
        store.advance(
            conn,
            row,
            ["checked"],
            "rolled_back",
            now=now,
            decision="rollback",
            reason="latency: p95 latency ratio 9.87 (max 2.0)",
            figures={"samples": 50, "mmd_p_value": 0.5768, "latency_p95_ratio": 9.8747},
        )
    monkeypatch.setenv("WAREHOUSE_DSN", scratch_warehouse.warehouse_dsn)
    runner = CliRunner()

    table = runner.invoke(app, ["deployments", "--model", "twin-llm"])
    as_json = runner.invoke(app, ["deployments", "--model", "twin-llm", "--json"])

    assert table.exit_code == 0, table.output
    assert "rolled_back" in table.output and "9.875" in table.output and "0.577" in table.output
    rows = json.loads(as_json.output)
    assert rows[0]["version"] == "4" and rows[0]["decision"] == "rollback"
    assert rows[0]["figures"]["latency_p95_ratio"] == 9.8747
