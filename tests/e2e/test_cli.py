"""The `twin` command as a user runs it, against the session's stack."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT
from twin.settings import Settings

pytestmark = pytest.mark.integration


def twin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        timeout=180,
    )


def test_healthcheck_command_reports_every_service(stack_settings: Settings) -> None:
    result = twin("healthcheck")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5/5 services healthy" in result.stdout


def test_status_json_lists_services_with_urls(stack_settings: Settings) -> None:
    result = twin("stack", "status", "--json", "--home", str(stack_settings.home))
    statuses = {s["name"]: s for s in json.loads(result.stdout)}
    started_here = [n for n in ("postgres", "mongo", "triton", "mlflow") if statuses[n]["pid"]]
    assert started_here, "the session stack started at least one service in this home"
    assert all(statuses[n]["healthy"] and statuses[n]["url"] != "-" for n in started_here)


def test_bad_service_name_is_a_clear_error(stack_settings: Settings) -> None:
    result = twin("stack", "up", "--home", str(stack_settings.home), "--services", "postgres,kafka")
    assert result.returncode == 2
    assert "unknown service(s): kafka" in result.stderr
    assert "Traceback" not in result.stderr
