"""Airflow as people run it: `airflow standalone`, a trigger through the REST API, the asset chain.

The stack (Postgres, MongoDB protocol, Airflow) runs in a scratch home on free ports with an
environment that holds no connection: every task finds its connections in the metadata DB, where
`twin stack up` applied airflow_settings.yaml. `twin_crawl` is triggered through `/api/v2` with a
link to a page that is new on the stack's sample site; `twin_warehouse` and `twin_features` must
start by themselves from the assets and succeed, and `twin search` must then find the page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, scratch_home
from twin.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONNECTION_IDS = {
    "mongo_default",
    "warehouse_postgres",
    "mlflow_default",
    "triton_default",
    "aws_default",
}
# Anything pointing at another stack (the session's) must not leak into this one.
STACK_KEYS = (
    "TWIN_HOME",
    "OBJECT_STORE_URL",
    "MONGO_URI",
    "MONGO_DATABASE",
    "WAREHOUSE_DSN",
    "MLFLOW_TRACKING_URI",
    "TRITON_HTTP_URL",
    "TRITON_GRPC_URL",
    "TRITON_METRICS_URL",
    "TRITON_MODEL_REPOSITORY",
    "AIRFLOW_HOME",
    "AIRFLOW_UI_URL",
    "SAMPLE_SITE_URL",
)
PHRASE = "quokka telemetry for lighthouse keepers"
CHAIN_TIMEOUT_S = 1200


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

    def wait_for(self, dag_id: str, known: set[str], timeout_s: float) -> dict:
        """The first run of `dag_id` not in `known`, once it has finished."""
        deadline = time.monotonic() + timeout_s
        new: list[dict] = []
        while time.monotonic() < deadline:
            try:
                new = [r for r in self.runs(dag_id) if r["dag_run_id"] not in known]
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
            if key.startswith(("AIRFLOW_CONN_", "CRAWL_")) or key in STACK_KEYS:
                mp.delenv(key)
        mp.setenv("TWIN_HOME", str(home))
        stack = Stack(home, ("postgres", "mongo", "sample", "airflow"))
        try:
            result = stack.up()
            url = stack.services["airflow"].url
            token = httpx.get(f"{url}/auth/token", timeout=120).json()["access_token"]
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


def test_the_stack_unpauses_the_chain_and_lists_the_connections(airflow_standalone) -> None:
    af = airflow_standalone
    for dag_id in ("twin_crawl", "twin_warehouse", "twin_features"):
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


def test_a_trigger_with_a_new_link_runs_the_chain_by_assets(airflow_standalone, new_page) -> None:
    af = airflow_standalone
    known = {d: {r["dag_run_id"] for r in af.runs(d)} for d in ("twin_warehouse", "twin_features")}
    began = time.monotonic()
    run_id = af.trigger("twin_crawl", {"author": "Ada Lindqvist", "blog": [new_page]})
    crawl = af.wait_for("twin_crawl", set(), CHAIN_TIMEOUT_S)
    assert crawl["dag_run_id"] == run_id
    assert crawl["state"] == "success", af.task_states("twin_crawl", run_id)
    report = af.xcom("twin_crawl", run_id, "crawl_source", map_index=0)
    assert af.task_states("twin_crawl", run_id)["publish_if_changed"] == "success", report

    warehouse = af.wait_for("twin_warehouse", known["twin_warehouse"], CHAIN_TIMEOUT_S)
    assert warehouse["run_type"] == "asset_triggered"
    assert warehouse["state"] == "success", af.task_states(
        "twin_warehouse", warehouse["dag_run_id"]
    )
    features = af.wait_for("twin_features", known["twin_features"], CHAIN_TIMEOUT_S)
    assert features["run_type"] == "asset_triggered"
    assert features["state"] == "success", af.task_states("twin_features", features["dag_run_id"])
    seconds = time.monotonic() - began
    print(f"\ntrigger to twin_features success: {seconds:.0f} s")

    search = subprocess.run(
        [sys.executable, "-m", "twin.cli", "search", PHRASE, "--k", "3", "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=dict(os.environ, TWIN_HOME=str(af.stack.home)),
        timeout=300,
    )
    assert search.returncode == 0, search.stdout + search.stderr
    assert "quokka-telemetry" in search.stdout, search.stdout


def test_a_second_trigger_with_nothing_new_runs_no_downstream_dag(
    airflow_standalone, new_page
) -> None:
    af = airflow_standalone
    before = {d: len(af.runs(d)) for d in ("twin_warehouse", "twin_features")}
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
