"""A deployment run, task by task as the twin_deploy DAG runs it, while Triton, then MLflow, then
Postgres is killed (SIGKILL, the whole process group) and restarted at a random moment of a random
task. The stack is this test's own (its services are killed); the kills follow a seeded random
plan, and the seed is printed (set TWIN_FAULT_SEED to replay one).

A task that fails is retried once its service is back, as Airflow retries it; a run whose task
keeps failing ends with the reconcile task and is followed by a new run. Afterwards exactly one
champion is served, MLflow, Triton and serving.deployments agree, and no client request during
the window was answered by a version that was never promoted.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import psycopg
import pytest

from tests.conftest import scratch_home
from tests.integration.test_retrieval import MARTS_DDL, sample_document_rows
from tests.reliability.deploy_env import (
    ClientLoop,
    Env,
    assert_agree,
    promote_given,
    register,
    seed_questions,
)
from twin.deploy.serving_control import TritonServing
from twin.settings import load_settings
from twin.stack import Stack

pytestmark = pytest.mark.integration

KILLED_IN_ORDER = ("triton", "mlflow", "postgres")
TASKS = ("preflight", "load", "shadow", "checks", "decide")
ATTEMPTS = 3  # per task and run, as the DAG's retries
RUNS = 2  # a run whose task keeps failing is followed by another
PARAMS = {"min_samples": 8, "shadow_share": 1.0, "require_approval": False}
TINY_PROMPTS = {"SERVING_DEFAULT_MAX_TOKENS": "16", "SERVING_CONTEXT_TOKENS": "300"}


@dataclass(frozen=True)
class Kill:
    task: int
    service: str
    delay_s: float


def kill_plan(seed: int) -> list[Kill]:
    """Triton, then MLflow, then Postgres, each at a random task (in that order) and a random
    moment after the task starts."""
    rng = random.Random(seed)
    tasks = sorted(rng.randrange(len(TASKS)) for _ in KILLED_IN_ORDER)
    return [
        Kill(task, service, round(rng.uniform(0.0, 1.5), 2))
        for task, service in zip(tasks, KILLED_IN_ORDER, strict=True)
    ]


@pytest.fixture
def env(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Postgres, MLflow and Triton of this test's own; the sample author's index; a first
    champion; every setting and process pointed at this stack."""
    from twin.features.embed import Embedder
    from twin.features.pipeline import sync_features
    from twin.store.base_models import resolve_base_model
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    home = scratch_home("twin-fault-")
    stack = Stack(home, ("postgres", "mlflow", "triton"))
    try:
        stack.up()
        # every task loads its settings afresh: the tiny model's prompt budget goes by environment
        for key, value in {**stack.endpoints(), **TINY_PROMPTS}.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(home)
        with psycopg.connect(settings.require("warehouse_dsn"), autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            rows = sample_document_rows()
            columns = list(rows[0])
            with conn.cursor().copy(
                f"copy marts.documents ({', '.join(columns)}) from stdin"
            ) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        sync_features(settings, embedder=Embedder.get())
        folder = resolve_base_model("tiny-llama", tmp_path_factory.mktemp("models")).path
        versions = register(settings, folder, ("first", "second"))
        with warehouse_connection(settings, autocommit=True) as conn:
            env = Env(settings, stack, tracking_client(settings), conn, versions)
            promote_given(env, "first")
            seed_questions(env)
        yield env
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def kill_and_restart(stack: Stack, kills: list[Kill], events: list[str]) -> None:
    """Each kill in turn: wait its delay, SIGKILL the service's process group, restart it (a
    restart that fails on a busy machine is tried again, as an operator would)."""
    for kill in kills:
        time.sleep(kill.delay_s)
        pid = stack.services[kill.service].process.record().pid
        os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(30)
        events.append(f"killed {kill.service}")
        for attempt in range(1, 4):
            try:
                result = stack.up()
            except Exception as err:
                events.append(f"restart #{attempt} of {kill.service} failed: {err}"[:300])
                continue
            notes = " ".join(result.notes)
            events.append(f"restarted {', '.join(result.started)} {notes}".strip())
            break


def run_task(name: str, version: int) -> object:
    from twin.deploy import tasks

    step = {
        "preflight": tasks.preflight_task,
        "load": tasks.load_task,
        "shadow": tasks.shadow_task,
        "checks": tasks.check_task,
        "decide": tasks.decide_task,
    }[name]
    return step(version, {**PARAMS, "version": version})


def dag_run(stack: Stack, version: int, plan: list[Kill], events: list[str]) -> bool:
    """One run of the DAG's tasks (each retried while its service comes back); the reconcile
    task last, whatever happened. Returns whether every task succeeded."""
    from twin.deploy.tasks import reconcile_task

    succeeded = True
    for index, name in enumerate(TASKS):
        kills = [k for k in plan if k.task == index]
        del plan[: len(kills)]
        for attempt in range(1, ATTEMPTS + 1):
            fault = None
            if kills:  # during the task's first attempt
                fault = threading.Thread(target=kill_and_restart, args=(stack, kills, events))
                fault.start()
                kills = []
            try:
                events.append(f"{name} #{attempt}: {run_task(name, version)}")
                error = None
            except Exception as err:
                error = err
                events.append(f"{name} #{attempt} failed: {type(err).__name__}: {err}"[:300])
            if fault:  # the service is back before the task is retried
                fault.join(600)
            if error is None:
                break
            time.sleep(1)
        else:
            succeeded = False
            break
    for attempt in range(1, 4):  # the reconcile task has retries of its own
        try:
            events.append(f"reconcile #{attempt}: {reconcile_task(version, PARAMS)}")
            break
        except Exception as err:
            events.append(f"reconcile #{attempt} failed: {type(err).__name__}: {err}"[:300])
            time.sleep(2)
    return succeeded


def test_deployment_survives_triton_mlflow_and_postgres_killed(env: Env) -> None:
    from twin.deploy.registry import alias_version
    from twin.domain.models import CHAMPION
    from twin.store.deployments import get_deployment, list_deployments
    from twin.store.warehouse import warehouse_connection

    seed = int(os.environ.get("TWIN_FAULT_SEED") or random.SystemRandom().randrange(10**6))
    plan = kill_plan(seed)
    print(f"fault seed {seed}: " + ", ".join(f"{k.service} in {TASKS[k.task]}" for k in plan))
    name = env.settings.registered_model
    version = env.versions["second"]
    events: list[str] = []

    with ClientLoop(env.settings) as clients:
        time.sleep(1)
        for _ in range(RUNS):
            if dag_run(env.stack, version, plan, events):
                break
        time.sleep(1)
    print("\n".join(events))
    print(f"{len(clients.answers)} answers, {len(clients.errors)} errors during the window")
    print(Counter(error[:120] for error in clients.errors).most_common(5))

    with warehouse_connection(env.settings, autocommit=True) as conn:
        env.conn = conn
        record = get_deployment(conn, name, version)
        promoted = {
            int(r.version) for r in list_deployments(conn, name, 100) if r.state == "promoted"
        }
        assert record.state in ("promoted", "rolled_back"), record.history
        assert_agree(env)
    champion = int(alias_version(env.client, name, CHAMPION))
    serving = TritonServing(env.settings)
    assert serving.loaded_versions() == {champion}  # exactly one champion served
    assert serving.default_version() == champion
    assert champion in promoted
    answered = {v for _, v in clients.answers}
    assert answered and answered <= promoted, (answered, promoted)
    assert plan == [] and sum(e.startswith("killed") for e in events) == len(KILLED_IN_ORDER)
