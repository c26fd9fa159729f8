"""Deployments that survive what happens to the services around them, on a Triton of this
module's own (it is stopped and restarted), the session's real MLflow and a scratch warehouse
holding the sample author's index:

- a Postgres failure between MLflow's promotion and the record's update is repaired by reconcile;
- two deployments of different versions started together run one after the other;
- a rolled-back deployment is restarted with `twin deployments retry` (who and why recorded);
- reconcile leaves alone a version that no deployment loaded;
- a restart of Triton brings back the champion and the challenger that was in shadow (last: it
  restarts the module's Triton).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tests.conftest import scratch_home
from tests.integration.test_retrieval import chunk_store  # noqa: F401 - module fixture
from tests.reliability.deploy_env import (
    QUESTIONS,
    Env,
    aliases,
    assert_agree,
    deployment,
    judge,
    promote_given,
    register,
    seed_questions,
)
from twin.deploy.deployment import DeploymentBusy, reconcile
from twin.deploy.registry import alias_version
from twin.deploy.serving_control import TritonServing
from twin.domain.models import CHAMPION, VersionTag
from twin.store.deployments import get_deployment

pytestmark = pytest.mark.integration

LABELS = ("baseline", "shadowed", "mid_promote", "race_a", "race_b", "retried", "by_hand")
# Bounds a loaded test machine cannot trip (a timed-out pair, a slow p95): where a test needs a
# promotion, the checks are not what it is about.
LENIENT = {"max_error_rate": 0.5, "max_latency_p95_ratio": 20.0}


@pytest.fixture(scope="module")
def env(chunk_store, tmp_path_factory) -> Iterator[Env]:  # noqa: F811
    from twin.stack import Stack
    from twin.store.base_models import resolve_base_model
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    home = scratch_home("twin-recover-")
    stack = Stack(home, ("triton",))
    with pytest.MonkeyPatch.context() as patch:
        # the restore that follows a Triton start reads the records where this module keeps them
        patch.setenv("WAREHOUSE_DSN", chunk_store.dsn)
        stack.up()
        try:
            endpoints = stack.endpoints()
            settings = chunk_store.settings.model_copy(
                update={
                    "triton_http_url": endpoints["TRITON_HTTP_URL"],
                    "triton_grpc_url": endpoints["TRITON_GRPC_URL"],
                    "triton_metrics_url": endpoints["TRITON_METRICS_URL"],
                    "triton_model_repository": Path(endpoints["TRITON_MODEL_REPOSITORY"]),
                    "triton_repository_key": endpoints.get("TRITON_REPOSITORY_KEY"),
                    "registered_model": f"twin-llm-recover-{os.getpid()}-{int(time.time())}",
                    "serving_default_max_tokens": 16,
                    "serving_context_tokens": 300,
                    "serving_rag_instances": 1,
                }
            )
            folder = resolve_base_model("tiny-llama", tmp_path_factory.mktemp("models")).path
            versions = register(settings, folder, LABELS)
            with warehouse_connection(settings, autocommit=True) as conn:
                yield Env(settings, stack, tracking_client(settings), conn, versions)
        finally:
            stack.down()
            shutil.rmtree(home, ignore_errors=True)


def champion(env: Env) -> int:
    return int(alias_version(env.client, env.settings.registered_model, CHAMPION))


def test_baseline_champion(env: Env) -> None:
    promote_given(env, "baseline")
    seed_questions(env)
    assert_agree(env)


def test_postgres_failure_after_the_promotion_is_repaired_by_reconcile(env: Env) -> None:
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    name = env.settings.registered_model
    version = env.versions["mid_promote"]
    before = champion(env)
    conn = warehouse_connection(env.settings, autocommit=True)
    killed: list[float] = []
    done = threading.Event()

    def kill_after_promotion() -> None:
        """The deployment's Postgres session dies once MLflow names the version champion."""
        watcher = tracking_client(env.settings)
        while not done.is_set():
            if alias_version(watcher, name, CHAMPION) == str(version):
                env.conn.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
                killed.append(time.time())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=kill_after_promotion, daemon=True)
    thread.start()
    try:
        with pytest.raises(psycopg.OperationalError):
            # the old champion drains for 10 s after the promotion: time for the watcher
            judge(env, deployment(env, "mid_promote", conn=conn, drain_s=10.0, **LENIENT))
    finally:
        done.set()
        thread.join(10)
        conn.close()
    assert killed, "the version was never promoted"
    stranded = get_deployment(env.conn, name, version)
    assert stranded.state == "checked" and aliases(env) == (str(version), None)

    # what the DAG's reconcile task does after the failed run
    result = reconcile(env.client, env.conn, TritonServing(env.settings), name, stopped=[version])

    assert result.ok, result.problems
    repaired = get_deployment(env.conn, name, version)
    assert repaired.state == "promoted" and repaired.decision == "promote"
    assert "repaired by reconcile" in repaired.history[-1]["note"]
    assert repaired.previous_champion == str(before)
    rerun = judge(env, deployment(env, "mid_promote"))
    assert rerun.state == "promoted" and rerun.history == repaired.history
    assert_agree(env)


def test_two_deployments_started_together_run_one_after_the_other(env: Env) -> None:
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    start = threading.Barrier(2)
    busy: list[tuple[str, str]] = []
    rows: dict[str, object] = {}
    errors: list[str] = []

    def deploy(label: str) -> None:
        with warehouse_connection(env.settings, autocommit=True) as conn:
            d = deployment(env, label, conn=conn, client=tracking_client(env.settings))
            start.wait()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    rows[label] = judge(env, d)
                    return
                except DeploymentBusy as err:  # as Airflow would: retry the task later
                    busy.append((label, str(err)))
                    time.sleep(1)
                except Exception as err:
                    errors.append(f"{label}: {type(err).__name__}: {err}")
                    return

    threads = [threading.Thread(target=deploy, args=(label,)) for label in ("race_a", "race_b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(660)

    assert errors == [] and set(rows) == {"race_a", "race_b"}
    first, second = sorted(rows.values(), key=lambda r: r.created_at)
    waited = {label for label, _ in busy}
    assert waited == {label for label, r in rows.items() if r is second}, busy
    assert f"version {first.version}" in busy[0][1]
    # serial: the second was admitted only once the first was decided
    assert first.decided_at <= second.created_at
    assert {first.state, second.state} <= {"promoted", "rolled_back"}
    expected = first.version if first.state == "promoted" else first.previous_champion
    assert second.previous_champion == expected
    assert_agree(env)


def test_retry_restarts_a_rolled_back_deployment(env: Env) -> None:
    from twin.cli import app

    name = env.settings.registered_model
    version = env.versions["retried"]
    rolled = judge(env, deployment(env, "retried", max_latency_p95_ratio=0.01, latency_alpha=1.0))
    assert rolled.state == "rolled_back" and "latency" in rolled.reason
    runner = CliRunner()

    refused = runner.invoke(
        app,
        ["deployments", "retry", str(champion(env)), "--reason", "why not", "--model", name],
    )
    retried = runner.invoke(
        app,
        [
            "deployments",
            "retry",
            str(version),
            "--reason",
            "p95 measured while the host was busy",
            "--by",
            "alice",
            "--model",
            name,
        ],
    )

    assert refused.exit_code == 1 and "is the champion" in refused.output
    assert retried.exit_code == 0, retried.output
    row = get_deployment(env.conn, name, version)
    entry = row.history[-1]
    assert row.state == "planned" and row.attempts == 2 and row.decision is None
    assert (entry["by"], entry["why"]) == ("alice", "p95 measured while the host was busy")
    assert entry["earlier"]["decision"] == "rollback" and "latency" in entry["earlier"]["reason"]
    assert row.previous_champion == str(champion(env))
    tags = env.client.get_model_version(name, str(version)).tags
    assert tags[VersionTag.DEPLOYMENT] == "retry" and "alice" in tags["deployment_reason"]

    again = judge(env, deployment(env, "retried", **LENIENT))
    assert again.state in ("promoted", "rolled_back") and again.attempts == 2
    assert "latency" not in (again.reason or "")
    assert_agree(env)


def test_reconcile_leaves_a_version_no_deployment_loaded(env: Env) -> None:
    from twin.serving.repository import load_versions, unload_version

    by_hand = env.versions["by_hand"]
    load_versions(env.settings, [by_hand])
    try:
        result = reconcile(
            env.client, env.conn, TritonServing(env.settings), env.settings.registered_model
        )
        assert by_hand in TritonServing(env.settings).loaded_versions()
        assert result.ok, result.problems
    finally:
        unload_version(env.settings, by_hand)


def test_restart_serves_the_champion_and_the_challenger_in_shadow_again(env: Env) -> None:
    from twin.serving.client import ask, generate_text
    from twin.serving.repository import read_routing

    first = champion(env)
    d = deployment(env, "shadowed")
    d.start()
    d.preflight(require_approval=False)
    d.load()
    d.begin_shadow(1.0)
    shadowed = d.version
    before = ask(env.settings, QUESTIONS[0])["meta"]["model_version"]

    env.stack.down()
    restarted = env.stack.up()
    print("stack up notes:", restarted.notes)

    serving = TritonServing(env.settings)
    assert "triton" in restarted.started
    assert serving.loaded_versions() == {first, shadowed}, restarted.notes
    routing = read_routing(env.settings)
    assert (routing["champion"], routing["shadow"]) == (first, shadowed)
    assert before == first
    assert ask(env.settings, QUESTIONS[1])["meta"]["model_version"] == first
    assert generate_text(env.settings, "Hello", max_tokens=4, version=first)["text"] is not None
    # the deployment goes on where it stood
    row = judge(env, d)
    assert row.state in ("promoted", "rolled_back") and row.attempts == 1
    assert_agree(env)
