"""Airflow as a team runs it: Celery workers, a trigger through the REST API, the asset chain.

The whole stack (Postgres, MongoDB protocol, MLflow, Triton, the sample site, Airflow) runs in a
scratch home on free ports in Celery mode: a Redis broker, two workers for the default, crawl and
embedding queues and one for the training queue only, each with its own hostname and working
folder, and the S3 server holding the object store. The environment holds no connection: every
task finds its connections in the metadata DB, where `twin stack up` applied
airflow_settings.yaml. `twin_crawl` is triggered through `/api/v2` with the sample author's links
and a page that is new on the site; every later DAG of the chain must start by itself from its
asset and succeed: `twin_warehouse`, then `twin_features` (after which `twin search` finds the
page) and `twin_datasets`, then `twin_training` (on the tiny base model the environment names,
with the DAG's default Params), then `twin_deploy`, which decides on the new version.
`twin_monitor` is triggered like a user would. Task instances must show both general workers,
the training task the training worker only; the crawl's raw payloads and the versions Triton
serves must be objects on the S3 server, not files on a worker's disk, and the training run must
work in the training worker's own folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.conftest import PROJECT_ROOT, is_stack_key, scratch_home
from tests.integration.test_training_pipeline import shared_model_cache
from twin.stack import Executor, Stack
from twin.stack.airflow import ADMIN_PASSWORD_SECRET, ADMIN_USER, CHAIN_DAGS
from twin.stack.demo_site import describe_demo_site
from twin.store.vectors import active_version

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
HEARTBEAT_TIMEOUT_S = 30
# What scheduled training runs on here: the config-built tiny model, not SmolLM2.
TRAINING_BASE_MODEL = "tiny-llama"
DOWNSTREAM = ("twin_warehouse", "twin_features", "twin_datasets", "twin_training", "twin_deploy")


# What every line of a task's log repeats: left out of a failure report.
LOG_CONTEXT_FIELDS = frozenset(
    {"event", "timestamp", "ti_id", "dag_id", "run_id", "task_id", "map_index", "try_number"}
    | {"logger", "filename", "lineno", "loc"}
)


def log_tail(resp: httpx.Response, lines: int = 40) -> str:
    """The last `lines` lines of a task log from Airflow's API (structured messages: each one's
    event and fields), or the answer's text when it is not a log."""
    try:
        content = resp.json()["content"]
    except (ValueError, KeyError, TypeError):
        return resp.text[-3000:]
    rendered = []
    for message in content:
        if isinstance(message, dict):
            fields = {k: v for k, v in message.items() if k not in LOG_CONTEXT_FIELDS}
            rendered.append(f"{message.get('event', '')} {fields if fields else ''}".rstrip())
        else:
            rendered.append(str(message))
    return "\n".join(rendered[-lines:])[-6000:]


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

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        resp = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        resp.raise_for_status()
        return resp.json()["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        resp = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        resp.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in resp.json()["task_instances"]}

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """The run's task states and each failed task's log tail (every try), for an assertion
        message."""
        instances = self.task_instances(dag_id, run_id)
        lines = [f"{dag_id} {run_id}: { ({ti['task_id']: ti['state'] for ti in instances}) }"]
        for ti in instances:
            if ti["state"] not in ("failed", "upstream_failed"):
                continue
            lines.append(f"--- {ti['task_id']} ({ti['state']}, {ti['try_number']} tries)")
            if ti["state"] == "upstream_failed":
                continue
            for attempt in range(1, max(ti["try_number"], 1) + 1):
                resp = self.api.get(
                    f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{attempt}",
                    params={"full_content": True, "map_index": ti["map_index"]},
                    headers={"Accept": "application/json"},
                )
                lines.append(f"try {attempt}:\n{log_tail(resp)}")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def airflow_standalone() -> Iterator[AirflowUnderTest]:
    """Postgres, MongoDB protocol, the sample author's site and Airflow in Celery mode (Redis, two
    general workers, a training worker, the S3 server) in a scratch home on free ports, started
    from an environment that holds no endpoint and no connection."""
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
        # A killed worker's task fails after 30 s without a heartbeat (the stack's 90 s is for a
        # busy team's workers); the supervisor beats every few seconds, so live tasks keep theirs.
        mp.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", str(HEARTBEAT_TIMEOUT_S))
        stack = Stack(
            home,
            ("postgres", "mongo", "triton", "mlflow", "sample", "airflow"),
            Executor("celery", workers=2, training_workers=1),
        )
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
    crawl = af.wait_for("twin_crawl", set(), CHAIN_TIMEOUT_S, run_id=run_id)
    assert crawl["state"] == "success", af.task_states("twin_crawl", run_id)
    report = af.xcom("twin_crawl", run_id, "crawl_source", map_index=0)
    assert af.task_states("twin_crawl", run_id)["publish_if_changed"] == "success", report
    return {"known": known, "began": began}


def wait_asset_triggered(af: AirflowUnderTest, dag_id: str, trigger: dict) -> dict:
    """The run of `dag_id` the chain started: started by an asset, and successful. Once a DAG
    before it in the chain failed, no run will come: the wait fails at once."""
    failed = trigger.setdefault("failed", {})
    upstream = DOWNSTREAM[: DOWNSTREAM.index(dag_id)]
    if any(d in failed for d in upstream):
        pytest.fail(f"{dag_id} never runs: the chain stopped at {failed}")
    if dag_id in failed:
        pytest.fail(failed[dag_id])
    run = af.wait_for(dag_id, trigger["known"][dag_id], CHAIN_TIMEOUT_S)
    assert run["run_type"] == "asset_triggered", run
    if run["state"] != "success":
        failed[dag_id] = f"{dag_id} run {run['dag_run_id']}: {run['state']}"  # if the report fails
        failed[dag_id] = af.failure_report(dag_id, run["dag_run_id"])
        pytest.fail(failed[dag_id])
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


def test_the_chain_ran_on_every_worker_and_training_on_the_training_worker_only(
    airflow_standalone, first_trigger
) -> None:
    """Fan-out over both general workers (the crawl's mapped pieces, the warehouse's models),
    the training task on the training queue's worker, which ran nothing else."""
    af = airflow_standalone
    workers = {n: af.stack.services[n].hostname for n in af.stack.workers}
    ran_on: dict[str, set[str]] = {}
    for dag_id in ("twin_crawl", *DOWNSTREAM):
        for run in af.runs(dag_id):
            for ti in af.task_instances(dag_id, run["dag_run_id"]):
                # an EmptyOperator (Cosmos' placeholders) succeeds in the scheduler: no host
                if ti["state"] == "success" and ti["hostname"]:
                    ran_on.setdefault(ti["hostname"], set()).add(f"{dag_id}.{ti['task_id']}")
    assert set(ran_on) <= set(workers.values()), ran_on
    assert workers["worker1"] in ran_on and workers["worker2"] in ran_on, ran_on
    assert ran_on.get(workers["training-worker1"]) == {"twin_training.train_evaluate_register"}


def test_objects_and_served_models_are_on_the_s3_server_not_files_on_a_worker(
    airflow_standalone, first_trigger
) -> None:
    """Raw payloads and the Triton model repository are objects on the S3 server; the training
    run's working folder is the training worker's own."""
    af = airflow_standalone
    s3 = af.stack.services["s3"]
    client = s3.client()
    listing = client.list_objects_v2(Bucket=s3.bucket, Prefix="objects/raw/")
    assert listing.get("KeyCount", 0) > 0, listing
    home = af.stack.home
    on_disk = [p for folder in (home / "objects", home / "workers") for p in folder.rglob("raw/*")]
    assert on_disk == [], on_disk[:5]

    assert af.stack.endpoints()["TRITON_MODEL_REPOSITORY"] == f"s3://{s3.bucket}/triton"
    assert list(af.stack.services["triton"].repository.iterdir()) == []
    records = json.loads(twin_cli(af, "deployments", "--json").stdout)
    served = [r for r in records if r["figures"].get("questions_asked", 0) >= 1]
    for record in served:  # a version twin_rag answered with was read from the bucket
        prefix = f"triton/twin_llm/{record['version']}/"
        objects = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
        names = {o["Key"].rpartition("/")[2] for o in objects.get("Contents", [])}
        assert {"model.py", "version.json", "model.safetensors"} <= names, (prefix, names)

    assert not (home / "training").exists()
    runs = home / "workers" / "training-worker1" / "training"
    assert runs.is_dir() and any(runs.iterdir()), runs


def index_snapshot(dsn: str) -> dict:
    """The active index: its version, chunk count, a checksum of its ids and contents, each
    chunk's embedding, and how many index versions exist."""
    with psycopg.connect(dsn) as conn:
        version = active_version(conn)
        rows = conn.execute(
            f"select chunk_id, document_id, content, embedding::text from vectors.chunks_"
            f"{version.version_id} order by chunk_id"
        ).fetchall()
        versions = conn.execute("select count(*) from vectors.index_versions").fetchone()[0]
    return {
        "version": version.version_id,
        "versions": versions,
        "chunks": len(rows),
        "checksum": hashlib.sha256(repr([r[:3] for r in rows]).encode()).hexdigest(),
        "embeddings": {r[0]: json.loads(r[3]) for r in rows},
    }


def test_a_worker_killed_while_it_embeds_a_piece_loses_nothing(
    airflow_standalone, first_trigger
) -> None:
    """SIGKILL the worker that runs an embedding piece: the scheduler notices the missing
    heartbeat, the retry runs on a live worker, and the index ends as a clean run leaves it."""
    af = airflow_standalone
    wait_asset_triggered(af, "twin_features", first_trigger)
    dsn = af.stack.endpoints()["WAREHOUSE_DSN"]
    clean = index_snapshot(dsn)
    with psycopg.connect(dsn) as conn:  # the index forgets every document: all are re-embedded
        conn.execute(f"delete from vectors.chunks_{clean['version']}")
        conn.execute(
            "delete from vectors.document_state where version_id = %s", (clean["version"],)
        )
    run_id = af.trigger("twin_features", {})
    deadline = time.monotonic() + 300
    victim = None
    while victim is None and time.monotonic() < deadline:
        for ti in af.task_instances("twin_features", run_id):
            if ti["task_id"] == "chunk_embed_load" and ti["state"] == "running":
                victim = next(
                    n for n in af.stack.workers if af.stack.services[n].hostname == ti["hostname"]
                )
        time.sleep(1)
    assert victim, af.task_states("twin_features", run_id)
    time.sleep(3)  # well inside the piece: the model loads, the chunks embed
    worker = af.stack.services[victim].process.running()
    os.killpg(worker.pid, signal.SIGKILL)

    run = af.wait_for("twin_features", set(), CHAIN_TIMEOUT_S, run_id=run_id)
    assert run["state"] == "success", af.task_states("twin_features", run_id)
    piece = next(
        ti
        for ti in af.task_instances("twin_features", run_id)
        if ti["task_id"] == "chunk_embed_load"
    )
    assert piece["try_number"] >= 2 and piece["hostname"] != af.stack.services[victim].hostname
    after = index_snapshot(dsn)
    assert {k: after[k] for k in ("version", "versions", "chunks", "checksum")} == {
        k: clean[k] for k in ("version", "versions", "chunks", "checksum")
    }
    for chunk_id, vector in clean["embeddings"].items():  # the same vectors, to float noise
        again = after["embeddings"][chunk_id]
        assert sum(a * b for a, b in zip(vector, again, strict=True)) > 0.999, chunk_id
    af.stack.up()  # the killed worker back, for the tests after this one


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
