"""Warehouse and feature tasks on ordinary failures: a service that is down, a bad mart row, a
missing dbt manifest. Each ends in one clear error naming the cause; nothing else is lost."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime

import psycopg
import pytest

from tests.conftest import PROJECT_ROOT
from tests.integration.test_feature_pipeline import MARTS_DDL, clean_hash
from twin.errors import ServiceUnavailable
from twin.store.warehouse import scratch_database

DOCKERFILE = PROJECT_ROOT / "docker" / "airflow.Dockerfile"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def services_down(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("WAREHOUSE_DSN", f"postgresql://twin:pw@127.0.0.1:{port}/twin")
    monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{port}/?directConnection=true")
    monkeypatch.setenv("SERVICE_TIMEOUT_S", "0.5")


@pytest.mark.parametrize(
    ("module", "task", "service"),
    [
        ("twin.warehouse.tasks", "extract_load", "Postgres"),
        ("twin.warehouse.tasks", "enrich", "Postgres"),
        ("twin.features.tasks", "maintain_index_task", "Postgres"),
    ],
)
def test_a_down_service_fails_the_task_with_one_clear_line(
    services_down, module: str, task: str, service: str
) -> None:
    import importlib

    callable_ = getattr(importlib.import_module(module), task)
    with pytest.raises(ServiceUnavailable) as caught:
        callable_()

    message = str(caught.value)
    assert service in message and "twin stack status" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "pw" not in message  # no password in the task log


def test_a_bad_mart_row_fails_the_sync_task_after_the_others_are_indexed(
    stack_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.features.tasks import (
        FeatureSyncFailed,
        finish_sync_task,
        plan_pieces_task,
        sync_piece_task,
    )

    body = "Hybrid retrieval fuses dense and full-text rankings.\n"
    good = ("blog/ok", "Ada", "blog", "article", "Fine", None, None, 7, "en", body,
            clean_hash("Fine", body), datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    bad = ("", "Ada", "blog", "article", "No id", None, None, 7, "en", body,
           clean_hash("No id", body), datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    with scratch_database(stack_settings.require("warehouse_dsn"), "featfail") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            with conn.cursor().copy("copy marts.documents from stdin") as copy:
                copy.write_row(good)
                copy.write_row(bad)
        monkeypatch.setenv("WAREHOUSE_DSN", dsn)
        monkeypatch.setenv("TWIN_AUTHOR", "Ada")  # the platform's author, whose rows these are

        pieces = [sync_piece_task(piece) for piece in plan_pieces_task()]
        with pytest.raises(FeatureSyncFailed) as caught:
            finish_sync_task(pieces)

        with psycopg.connect(dsn) as conn:
            version = conn.execute(
                "select version_id from vectors.index_versions order by created_at desc limit 1"
            ).fetchone()[0]
            indexed = conn.execute(
                f"select distinct document_id from vectors.chunks_{version}"
            ).fetchall()
    assert "invalid mart row ''" in str(caught.value) and "document_id" in str(caught.value)
    assert caught.value.result["documents_changed"] == 1
    assert indexed == [("blog/ok",)]


def test_the_warehouse_dag_refuses_to_load_without_a_dbt_manifest(tmp_path) -> None:
    """No silent `dbt ls` at every parse: the DAG file fails to import, saying what to run."""
    missing = tmp_path / "target" / "manifest.json"
    dag_file = PROJECT_ROOT / "dags" / "twin_warehouse.py"
    probe = f"""
import importlib.util, pathlib, sys
import twin.warehouse.manifest as manifest
manifest.MANIFEST = pathlib.Path({str(missing)!r})
spec = importlib.util.spec_from_file_location("twin_warehouse_dag", {str(dag_file)!r})
try:
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
except manifest.ManifestMissing as exc:
    print("MISSING:", exc)
    sys.exit(3)
print("LOADED")
"""
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    assert "make dbt-parse" in proc.stdout


def test_the_airflow_image_builds_the_manifest_after_copying_the_project() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    copy_dbt = lines.index("COPY --chown=airflow:0 dbt/ ./dbt/")
    build = next(i for i, line in enumerate(lines) if "python -m twin.warehouse.manifest" in line)
    assert build > copy_dbt
    assert "dbt/target" in (PROJECT_ROOT / "docker" / "airflow.Dockerfile.dockerignore").read_text()
