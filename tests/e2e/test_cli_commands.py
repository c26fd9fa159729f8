"""Every `twin` command a user runs, as a user runs it: the real console entry point, the session's
stack, the sample author's site. What each prints and the status it ends with are the outcome.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from sample_author.links import sample_links
from tests.conftest import PROJECT_ROOT, is_stack_key, scratch_home
from twin.cli import app
from twin.settings import Settings
from twin.stack.process import free_port
from twin.store.mongo import mongo_client, twin_database

TWIN = str(Path(sys.executable).parent / "twin")


def twin(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    """Run the installed `twin` console script (the user's entry point)."""
    return subprocess.run(
        [TWIN, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
    )


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of `twin`, as the words a user types."""
    paths: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(getattr(cmd, "commands", None), dict):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


# --- without a stack: help and bad arguments -----------------------------------------------------


def test_every_command_answers_help() -> None:
    paths = command_paths()
    expected = {
        ("stack", "up"),
        ("stack", "status"),
        ("stack", "down"),
        ("healthcheck",),
        ("sample", "serve"),
        ("crawl",),
        ("crawl-summary",),
        ("warehouse-summary",),
        ("search",),
        ("eval", "retrieval"),
        ("datasets", "list"),
        ("ask",),
        ("serve", "up"),
        ("serve", "status"),
        ("deployments",),
    }
    assert expected <= set(paths), expected - set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output and result.exception is None, path
    listed = twin("--help")
    assert listed.returncode == 0
    assert all(f" {name} " in listed.stdout for name in ("crawl", "stack", "search", "ask"))


USAGE_ERRORS = {
    "search without a question": (["search"], "Missing argument 'QUESTION'"),
    "search in an unknown mode": (
        ["search", "hnsw", "--mode", "bogus"],
        "'bogus' is not one of 'hybrid', 'dense', 'fulltext'",
    ),
    "search for nothing": (["search", "   "], "the question is empty"),
    "serve a port that is no number": (["sample", "serve", "--port", "abc"], "'--port'"),
    "eval on a missing question set": (
        ["eval", "retrieval", "--questions", "/nonexistent/q.yaml"],
        "does not exist",
    ),
    "stack status with an unknown option": (["stack", "status", "--bogus"], "No such option"),
    "datasets show without a version": (["datasets", "show"], "Missing argument 'VERSION'"),
    "ask without a question": (["ask"], "Missing argument 'QUESTION'"),
    "serve up a version that is no number": (["serve", "up", "--version", "x"], "'--version'"),
    "deployments with an unknown option": (["deployments", "--bogus"], "No such option"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_bad_arguments_end_with_one_clear_line(case: str) -> None:
    args, words = USAGE_ERRORS[case]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert words.lower() in " ".join(result.output.split()).lower(), result.output
    assert "Traceback" not in result.output


def test_bad_crawl_links_are_named_even_with_markup_in_them(tmp_path: Path) -> None:
    env = {"TWIN_HOME": str(tmp_path)}
    result = twin("crawl", "ftp://example.org/[/x]", "[bold]not-a-url", env=env)

    assert result.returncode == 2, result.stderr
    assert "'ftp://example.org/[/x]': unsupported scheme 'ftp'" in result.stderr
    assert "'[bold]not-a-url'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_malformed_question_set_is_named(tmp_path: Path) -> None:
    questions = tmp_path / "questions.yaml"
    questions.write_text("questions: [unclosed\n")
    result = twin("eval", "retrieval", "--questions", str(questions), env={"TWIN_HOME": "/x"})
    assert result.returncode == 2
    assert f"invalid question set {questions}" in result.stderr
    assert "Traceback" not in result.stderr


# --- against the session's stack ----------------------------------------------------------------


@pytest.fixture
def crawl_env(stack_settings: Settings, sample_site):
    """Environment pointing `twin` at the sample site and a Mongo database of its own."""
    settings = sample_site.settings(stack_settings)
    env = {
        "MONGO_DATABASE": settings.mongo_database,
        "OBJECT_STORE_URL": settings.object_store_url,
        "CRAWL_ALLOW_PRIVATE_HOSTS": json.dumps(settings.crawl_allow_private_hosts),
        "CRAWL_PLATFORM_PREFIXES": json.dumps(settings.crawl_platform_prefixes),
        "CRAWL_PER_HOST_RATE": "200",
        "CRAWL_EXTRACT_PROCESSES": "1",
    }
    yield settings, env
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def summary_row(stdout: str, platform: str) -> list[str]:
    """`platform new chg same del skip fail url` of the printed crawl summary."""
    rows = [line.split() for line in stdout.splitlines() if line.startswith(platform + " ")]
    assert len(rows) == 1, stdout
    return rows[0]


@pytest.mark.integration
def test_crawl_then_crawl_summary_then_a_second_crawl_that_changes_nothing(
    crawl_env, sample_site
) -> None:
    settings, env = crawl_env
    page = f"{sample_site.base_url}/blog/the-tuesday-test/"

    first = twin("crawl", page, "--author", "E2E Author", env=env)
    summary = twin("crawl-summary", env=env)
    second = twin("crawl", page, "--author", "E2E Author", env=env)

    assert first.returncode == 0, first.stderr
    assert summary_row(first.stdout, "blog")[1:7] == ["1", "0", "0", "0", "0", "0"]
    run_id = first.stderr.split("crawl run ", 1)[1].split()[0]
    assert summary.returncode == 0 and f"crawl run {run_id} finished" in summary.stdout
    assert summary_row(summary.stdout, "blog")[-1] == page
    assert second.returncode == 0, second.stderr
    assert summary_row(second.stdout, "blog")[1:7] == ["0", "0", "1", "0", "0", "0"]
    with mongo_client(settings) as client:
        docs = list(twin_database(client, settings)["documents"].find({}, {"url": 1, "author": 1}))
    assert [(d["url"], d["author"]) for d in docs] == [(page, "E2E Author")]


@pytest.mark.integration
def test_a_link_with_markup_in_it_is_crawled_and_reported_verbatim(crawl_env, sample_site):
    _, env = crawl_env
    page = f"{sample_site.base_url}/blog/[/x]"

    result = twin("crawl", page, "--author", "E2E Author", env=env)

    assert result.returncode == 0, result.stderr
    assert summary_row(result.stdout, "blog")[-1] == page
    failed = [line for line in result.stdout.splitlines() if line.startswith("failed ")]
    failed += [line for line in result.stdout.splitlines() if line.startswith("FAILED source")]
    assert failed and all(page in line for line in failed), result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_crawl_without_links_for_an_author_with_none_recorded_is_refused(crawl_env) -> None:
    _, env = crawl_env
    result = twin("crawl", "--author", "Nobody Recorded", env=env)
    assert result.returncode == 2
    assert "no links given for 'Nobody Recorded' and none recorded" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_sample_serve_serves_the_site_and_records_its_links(crawl_env, sample_site) -> None:
    settings, env = crawl_env
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = str(sample_site.home / "site")  # already built: served as it is
    proc = subprocess.Popen(
        [TWIN, "sample", "serve", "--site-dir", site, "--port", str(port), "--record-links"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.get(f"{base}/robots.txt", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answer is not None and answer.status_code == 200, proc.poll()
        feed = httpx.get(sample_links(base)["medium"][0], timeout=5)
        assert feed.status_code == 200 and "<rss" in feed.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with mongo_client(settings) as client:
        author = twin_database(client, settings)["authors"].find_one({"name": "Ada Lindqvist"})
    assert author is not None and author["links"] == sample_links(base)
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.integration
def test_stack_up_sample_records_the_sample_links_then_status_then_down(stack_settings) -> None:
    home = scratch_home("twin-cli-")
    env = {key: value for key, value in os.environ.items() if not is_stack_key(key)}
    env |= {"TWIN_HOME": str(home), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [TWIN, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=300
        )

    try:
        up = run("stack", "up", "--sample", "--services", "mongo")
        again = run("stack", "up", "--sample", "--services", "mongo")
        status = run("stack", "status", "--json")
        written = dict(
            line.split("=", 1)
            for line in (home / "stack.env").read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        written = {k: shlex.split(v)[0] if v else v for k, v in written.items()}
        with mongo_client(Settings(mongo_uri=written["MONGO_URI"])) as client:
            authors = list(client["twin"]["authors"].find())
    finally:
        down = run("stack", "down")
        after = run("stack", "status", "--json")
        shutil.rmtree(home, ignore_errors=True)

    assert up.returncode == 0, up.stderr
    assert "links of " + written["SAMPLE_SITE_URL"] + " recorded" in up.stderr
    reused = again.stderr.split("reused: ", 1)[1].split(" (")[0].split(", ")
    assert again.returncode == 0 and sorted(reused) == ["mongo", "sample"], again.stderr
    assert [(a["name"], a["links"]) for a in authors] == [
        ("Ada Lindqvist", sample_links(written["SAMPLE_SITE_URL"]))
    ]
    statuses = {s["name"]: s for s in json.loads(status.stdout)}
    assert status.returncode == 1  # postgres, triton, mlflow were not asked for
    assert statuses["mongo"]["healthy"] and statuses["sample"]["healthy"]
    assert statuses["postgres"]["state"] == "stopped"
    assert down.returncode == 0 and "stopped: " in down.stderr
    assert {"mongo", "sample"} <= set(down.stderr.split("stopped: ", 1)[1].strip().split(", "))
    assert {s["name"]: s["state"] for s in json.loads(after.stdout)}["mongo"] == "stopped"


@pytest.mark.integration
def test_summaries_of_a_warehouse_not_built_yet_say_so(scratch_warehouse: Settings) -> None:
    result = twin("warehouse-summary", env={"WAREHOUSE_DSN": scratch_warehouse.warehouse_dsn})
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'relation "marts.documents" does not exist' in result.stderr
    assert "the warehouse is not built yet" in result.stderr
    assert "Traceback" not in result.stderr
