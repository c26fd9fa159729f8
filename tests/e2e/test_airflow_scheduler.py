"""Airflow as people run it: `airflow standalone`, a trigger through the REST API, the asset chain.

The whole stack (Postgres, MongoDB protocol, MLflow, Triton, the sample site, Airflow) runs in a
scratch home on free ports with an environment that holds no connection: every task finds its
connections in the metadata DB, where `twin stack up` applied airflow_settings.yaml. `twin_crawl`
is triggered through `/api/v2` with the sample author's links and a page that is new on the site;
every later DAG of the chain must start by itself from its asset and succeed: `twin_warehouse`,
then `twin_features` (after which `twin search` finds the page) and `twin_datasets`, then
`twin_training` (on the tiny base model the environment names, with the DAG's default Params), then
`twin_deploy`, which decides on the new version. `twin_monitor` is triggered like a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, is_stack_key, scratch_home
from tests.integration.test_training_pipeline import shared_model_cache
from twin.stack import Stack
from twin.stack.airflow import ADMIN_PASSWORD_SECRET, ADMIN_USER, CHAIN_DAGS
from twin.stack.demo_site import describe_demo_site

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONNECTION_IDS = {
    "mongo_default",
    "warehouse_postgres",
    "mlflow_default",
    "triton_default",
    "aws_default",
}
PHRASE = "quokka telemetry for lighthouse keepers"
CHAIN_TIMEOUT_S = 1200
# What scheduled training runs on here: the config-built tiny model, not SmolLM2.
TRAINING_BASE_MODEL = "tiny-llama"
DOWNSTREAM = ("twin_warehouse", "twin_features", "twin_datasets", "twin_training", "twin_deploy")


@dataclass
class AirflowUnderTest:
    stack: Stack
    api: httpx.Client
    notes: tuple[str, ...]

    def trigger(self, dag_id: str, conf: dict) -> str:
        resp = self.api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert resp.status_code in (200, 201), resp.text
        return resp.json()["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        resp = self.api.get(f"/dags/{dag_id}/dagRuns", params={"order_by": "run_after"})
        resp.raise_for_status()
        return resp.json()["dag_runs"]

    def wait_for(
        self, dag_id: str, known: set[str], timeout_s: float, run_id: str | None = None
    ) -> dict:
        """The first run of `dag_id` not in `known` (or the run `run_id`), once it has finished."""
        deadline = time.monotonic() + timeout_s
        new: list[dict] = []
        while time.monotonic() < deadline:
            try:
                new = [
                    r
                    for r in self.runs(dag_id)
                    if r["dag_run_id"] not in known and run_id in (None, r["dag_run_id"])
                ]
            except httpx.TransportError:  # a busy API server answers late: ask again
                time.sleep(3)
                continue
            if new and new[0]["state"] in ("success", "failed"):
                return new[0]
            time.sleep(3)
        raise AssertionError(f"{dag_id}: no finished new run within {timeout_s} s: {new}")

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> object:
        """A task's return value (for failure messages)."""
        resp = self.api.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index},
        )
        return resp.json().get("value") if resp.status_code == 200 else resp.text

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        resp = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        resp.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in resp.json()["task_instances"]}


@pytest.fixture(scope="module")
def airflow_standalone() -> Iterator[AirflowUnderTest]:
    """Postgres, MongoDB protocol, the sample author's site and `airflow standalone` in a scratch
    home on free ports, started from an environment that holds no endpoint and no connection."""
    home = scratch_home("twin-af-")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if is_stack_key(key):
                mp.delenv(key)
        mp.setenv("TWIN_HOME", str(home))
        mp.setenv("TWIN_TRAINING_BASE_MODEL", TRAINING_BASE_MODEL)
        # the asset chain deploys right after training: no reviewer approves in between
        mp.setenv("DEPLOY_REQUIRE_APPROVAL", "false")
        mp.setenv("TWIN_MODEL_CACHE", str(shared_model_cache()))
        stack = Stack(home, ("postgres", "mongo", "triton", "mlflow", "sample", "airflow"))
        try:
            result = stack.up()
            airflow = stack.services["airflow"]
            login = {"username": ADMIN_USER, "password": airflow.admin_password}
            url = airflow.url
            resp = httpx.post(f"{url}/auth/token", json=login, timeout=120)
            assert resp.status_code == 201, resp.text
            token = resp.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"{url}/api/v2", headers=headers, timeout=120) as api:
                yield AirflowUnderTest(stack, api, result.notes)
        finally:
            stack.down()
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def new_page(airflow_standalone) -> str:
    """A blog post that no crawl has seen yet, published on the stack's sample site."""
    sample = airflow_standalone.stack.services["sample"]
    folder = sample.site_dir / "blog" / "quokka-telemetry"
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = "".join(
        f"<p>{PHRASE.capitalize()} began as a weekend project, part {i}. Each lighthouse sends "
        "its lamp hours, battery voltage and the count of passing ships to a small queue, and "
        "a nightly job folds them into a table the keepers read over breakfast.</p>"
        for i in range(1, 6)
    )
    (folder / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Quokka telemetry for lighthouse keepers</title>"
        "<meta property='article:published_time' content='2026-03-02T08:00:00Z'></head>"
        "<body><main><article><h1>Quokka telemetry for lighthouse keepers</h1>"
        f"{paragraphs}</article></main></body></html>"
    )
    return f"{sample.url}/blog/quokka-telemetry/"


def twin_cli(af: AirflowUnderTest, *args: str) -> subprocess.CompletedProcess:
    """The `twin` CLI against the stack under test."""
    return subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=dict(os.environ, TWIN_HOME=str(af.stack.home)),
        timeout=300,
    )


def test_the_stack_unpauses_the_chain_and_lists_the_connections(airflow_standalone) -> None:
    af = airflow_standalone
    assert set(DOWNSTREAM) < set(CHAIN_DAGS)
    for dag_id in CHAIN_DAGS:
        dag = af.api.get(f"/dags/{dag_id}").json()
        assert dag.get("is_paused") is False, (dag_id, dag, af.notes)
    crawl = af.api.get("/dags/twin_crawl").json()
    assert crawl["next_dagrun_run_after"] is None or crawl["next_dagrun_run_after"] > (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    ), "unpausing queued a scheduled run in the past"
    assert af.runs("twin_crawl") == []

    resp = af.api.get("/connections", params={"limit": 100})
    listed = {c["connection_id"]: c for c in resp.json()["connections"]}
    assert set(listed) >= CONNECTION_IDS
    postgres_password = af.stack.services["postgres"].password
    mongo_password = af.stack.services["mongo"].password
    assert postgres_password not in resp.text and mongo_password not in resp.text
    assert listed["warehouse_postgres"]["host"] == "127.0.0.1"


def test_airflow_asks_for_the_stack_password(airflow_standalone) -> None:
    url = airflow_standalone.stack.services["airflow"].url
    assert httpx.get(f"{url}/auth/token", timeout=60).status_code == 403  # no all-admins token
    assert httpx.get(f"{url}/api/v2/dags", timeout=60).status_code == 401
    wrong = {"username": ADMIN_USER, "password": "not-the-password"}
    assert httpx.post(f"{url}/auth/token", json=wrong, timeout=60).status_code == 401
    secret = airflow_standalone.stack.home / "secrets" / ADMIN_PASSWORD_SECRET
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (
        airflow_standalone.stack.services["airflow"].admin_password
        not in (airflow_standalone.stack.home / "stack.env").read_text()
    )


@pytest.fixture(scope="module")
def first_trigger(airflow_standalone, new_page) -> dict:
    """`twin_crawl` triggered with the sample author's links and the new page; the run ids of
    every DAG before it, so each wait finds the run the chain started."""
    af = airflow_standalone
    known = {d: {r["dag_run_id"] for r in af.runs(d)} for d in DOWNSTREAM}
    site = describe_demo_site(af.stack.services["sample"].url)
    links = {platform: list(urls) for platform, urls in site.links.items()}
    links["blog"] = [*links.get("blog", []), new_page]
    began = time.monotonic()
    run_id = af.trigger("twin_crawl", {"author": site.author, **links})
    crawl = af.wait_for("twin_crawl", set(), CHAIN_TIMEOUT_S)
    assert crawl["dag_run_id"] == run_id
    assert crawl["state"] == "success", af.task_states("twin_crawl", run_id)
    report = af.xcom("twin_crawl", run_id, "crawl_source", map_index=0)
    assert af.task_states("twin_crawl", run_id)["publish_if_changed"] == "success", report
    return {"known": known, "began": began}


def wait_asset_triggered(af: AirflowUnderTest, dag_id: str, trigger: dict) -> dict:
    """The run of `dag_id` the chain started: started by an asset, and successful."""
    run = af.wait_for(dag_id, trigger["known"][dag_id], CHAIN_TIMEOUT_S)
    assert run["run_type"] == "asset_triggered", run
    assert run["state"] == "success", af.task_states(dag_id, run["dag_run_id"])
    print(f"\ntrigger to {dag_id} success: {time.monotonic() - trigger['began']:.0f} s")
    return run


def test_a_trigger_with_a_new_link_runs_the_chain_by_assets(
    airflow_standalone, first_trigger
) -> None:
    af = airflow_standalone
    wait_asset_triggered(af, "twin_warehouse", first_trigger)
    wait_asset_triggered(af, "twin_features", first_trigger)

    search = twin_cli(af, "search", PHRASE, "--k", "3", "--json")
    assert search.returncode == 0, search.stdout + search.stderr
    assert "quokka-telemetry" in search.stdout, search.stdout


def test_new_marts_go_on_to_datasets_training_and_a_deployment(
    airflow_standalone, first_trigger
) -> None:
    af = airflow_standalone
    datasets = wait_asset_triggered(af, "twin_datasets", first_trigger)
    assert af.task_states("twin_datasets", datasets["dag_run_id"])["publish_if_new"] == "success"
    training = wait_asset_triggered(af, "twin_training", first_trigger)
    states = af.task_states("twin_training", training["dag_run_id"])
    assert states["publish_candidate"] == "success", states
    trained = af.xcom("twin_training", training["dag_run_id"], "publish_candidate")
    assert isinstance(trained, dict) and trained.get("version"), trained
    deploy = wait_asset_triggered(af, "twin_deploy", first_trigger)
    assert af.task_states("twin_deploy", deploy["dag_run_id"])["reconcile"] == "success"

    models = twin_cli(af, "models", "list")
    assert models.returncode == 0, models.stdout + models.stderr
    assert TRAINING_BASE_MODEL in models.stdout, models.stdout
    listed = twin_cli(af, "deployments", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    records = json.loads(listed.stdout)
    record = next(r for r in records if str(r["version"]) == str(trained["version"]))
    # The first deployment has no champion to shadow: the training evaluation gate, then the
    # version's own answers to the author's evaluation questions through twin_rag decide. A few
    # steps of a random tiny model often answer nothing, which either refuses; a promoted version
    # must answer through twin_rag. (Both paths are tested on their own in test_deploy_triton.py.)
    print(
        f"\nfirst deployment of version {record['version']}: {record['state']} {record['reason']}"
    )
    if record["state"] == "rolled_back":
        refused_by_gate = "has not passed its evaluation thresholds" in record["reason"]
        assert refused_by_gate or record["figures"].get("questions_asked", 0) >= 2, record
        return
    assert record["state"] == "promoted", record
    assert record["figures"]["questions_asked"] >= 2, record
    ask = twin_cli(af, "ask", PHRASE, "--protocol", "http", "--json")
    assert ask.returncode == 0, ask.stdout + ask.stderr
    meta = json.loads(ask.stdout)["meta"]
    assert meta["grounded"], meta
    assert str(meta["model_version"]) == str(trained["version"]), meta


def test_twin_monitor_runs_when_triggered(airflow_standalone) -> None:
    af = airflow_standalone
    resp = af.api.patch("/dags/twin_monitor", json={"is_paused": False})
    assert resp.status_code == 200, resp.text
    run_id = af.trigger("twin_monitor", {})
    run = af.wait_for("twin_monitor", set(), CHAIN_TIMEOUT_S, run_id=run_id)
    assert run["state"] == "success", af.task_states("twin_monitor", run_id)
    window = af.xcom("twin_monitor", run_id, "monitor_window")
    assert isinstance(window, dict), window


def test_a_second_trigger_with_nothing_new_runs_no_downstream_dag(
    airflow_standalone, new_page
) -> None:
    af = airflow_standalone
    before = {d: len(af.runs(d)) for d in DOWNSTREAM}
    known = {r["dag_run_id"] for r in af.runs("twin_crawl")}
    run_id = af.trigger("twin_crawl", {"author": "Ada Lindqvist", "blog": [new_page]})
    crawl = af.wait_for("twin_crawl", known, CHAIN_TIMEOUT_S)
    assert crawl["state"] == "success", af.task_states("twin_crawl", run_id)
    assert af.task_states("twin_crawl", run_id)["publish_if_changed"] == "skipped"
    time.sleep(20)  # several scheduler loops: an asset event would have queued a run by now
    assert {d: len(af.runs(d)) for d in before} == before


def test_the_api_refuses_params_the_form_would_refuse(airflow_standalone) -> None:
    af = airflow_standalone
    resp = af.api.post(
        "/dags/twin_crawl/dagRuns",
        json={"logical_date": None, "conf": {"blog": ["file:///etc/hostname"]}},
    )
    assert resp.status_code == 400, resp.text
    assert "blog" in resp.text
