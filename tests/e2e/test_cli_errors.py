"""Ordinary mistakes at the `twin` command end with one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def twin(*args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "TWIN_HOME": str(home), **env},
        timeout=120,
    )


def test_malformed_variable_is_named_with_its_value(tmp_path: Path) -> None:
    result = twin("crawl-summary", env={"CRAWL_WORKERS": "lots"}, home=tmp_path)
    assert result.returncode == 2
    assert "CRAWL_WORKERS" in result.stderr and "'lots'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_malformed_variable_in_stack_env_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "stack.env").write_text("SERVICE_TIMEOUT_S=-3\n")
    result = twin("crawl-summary", env={}, home=tmp_path)
    assert result.returncode == 2
    assert "SERVICE_TIMEOUT_S" in result.stderr and str(tmp_path / "stack.env") in result.stderr


def test_service_that_is_down_is_named_without_traceback(tmp_path: Path) -> None:
    dsn = "postgresql://nobody:secret@127.0.0.1:1/twin"
    result = twin("warehouse-summary", env={"WAREHOUSE_DSN": dsn}, home=tmp_path)
    assert result.returncode == 1
    assert "Postgres (WAREHOUSE_DSN) failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr + result.stdout


def test_markup_in_a_search_mode_is_named_not_a_traceback(tmp_path: Path) -> None:
    """`--mode` is a choice (validated by the command line parser): text that Rich would read as
    markup is quoted back, never rendered."""
    result = twin(
        "search",
        "what is the tuesday test?",
        "--mode",
        "[/]",
        env={"COLUMNS": "200"},
        home=tmp_path,
    )
    assert result.returncode == 2
    assert "'[/]' is not one of 'hybrid', 'dense', 'fulltext'" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout
    assert "MarkupError" not in result.stderr


def test_search_modes_of_the_command_are_those_of_retrieval() -> None:
    from typing import get_args

    from twin.cli import SearchModeName
    from twin.rag.retrieve import SearchMode

    assert {m.value for m in SearchModeName} == set(get_args(SearchMode))
