"""Every DAG file imports fast and cleanly, does no work at import time, and is wired as designed.

Each file is imported in a fresh interpreter that has already imported Airflow (as Airflow's DAG
processor has), with network connections forbidden: the import time measured is the file's own.
Every Param a DAG declares is a field of the UI's trigger form, so each needs a title and a
description a person can act on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))
# A parse that does no work takes under a second here (twin_warehouse, which renders the dbt
# manifest with Cosmos, about two on a busy 2-core machine); work at parse time (a connection that
# waits for a timeout, a model load) takes far longer. Airflow gives up at 30 s
# (dagbag_import_timeout) and parses every file every 30 s.
IMPORT_BUDGET_S = 5.0
# Modules whose import at parse time means a DAG file does real work at module level.
HEAVY_MODULES = [
    "torch",
    "transformers",
    "sentence_transformers",
    "mlflow",
    "pymongo",
    "psycopg",
    "tritonclient",
    "great_expectations",
    "deepspeed",
    "dbt",
    "langdetect",
    "datasketch",
]


def probe(path: Path) -> dict:
    code = f"""
import importlib.util, json, socket, sys, time
HEAVY = {HEAVY_MODULES!r}
from airflow.sdk import DAG
from airflow.sdk.definitions._internal.contextmanager import DagContext
heavy_before = {{m for m in HEAVY if m in sys.modules}}

def refuse(*args, **kwargs):
    raise RuntimeError(f"network connection at import time: {{args!r}}")

socket.socket.connect = refuse
socket.create_connection = refuse
began = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {str(path)!r})
module = importlib.util.module_from_spec(spec)
sys.modules["dag_under_test"] = module
DagContext.current_autoregister_module_name = "dag_under_test"  # as the DAG processor does
spec.loader.exec_module(module)
seconds = time.perf_counter() - began
dags = list(DagContext.autoregistered_dags)
print(json.dumps({{
    "seconds": seconds,
    "heavy": sorted(m for m in HEAVY if m in sys.modules and m not in heavy_before),
    "dags": [{{
        "dag_id": d.dag_id,
        "tags": sorted(d.tags),
        "owner": d.default_args.get("owner"),
        "retries": d.default_args.get("retries"),
        "tasks": {{
            t.task_id: {{
                "owner": t.owner, "retries": t.retries, "pool": t.pool, "queue": t.queue
            }}
            for t in d.tasks
        }},
        "timetable": type(d.timetable).__name__,
        "catchup": d.catchup,
        "params": {{
            name: {{
                "description": d.params.get_param(name).description,
                "schema": d.params.get_param(name).schema,
            }}
            for name in d.params
        }},
    }} for d, _ in dags]
}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{path.name} failed to import:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=DAG_FILES, ids=lambda p: p.name)
def dag_file(request) -> tuple[Path, dict]:
    return request.param, probe(request.param)


def test_there_are_dags() -> None:
    assert any(p.name == "twin_healthcheck.py" for p in DAG_FILES)


def test_dag_file_imports_fast_without_work(dag_file) -> None:
    path, found = dag_file
    assert found["seconds"] < IMPORT_BUDGET_S, f"{path.name}: {found['seconds']:.2f} s"
    assert found["heavy"] == [], f"{path.name} imports {found['heavy']} at parse time"
    assert len(found["dags"]) == 1, f"{path.name} should define exactly one DAG"


def test_dag_is_wired_as_designed(dag_file) -> None:
    path, found = dag_file
    dag = found["dags"][0]
    assert dag["dag_id"] == path.stem, "a DAG's id is its file's name"
    assert "twin" in dag["tags"] and len(dag["tags"]) >= 2
    assert dag["owner"] and dag["owner"] != "airflow"
    assert isinstance(dag["retries"], int) and dag["retries"] >= 1
    assert dag["catchup"] is False
    assert all(t["owner"] == dag["owner"] for t in dag["tasks"].values())


def test_every_pool_a_task_names_is_declared(dag_file) -> None:
    """A task in a pool that does not exist is never scheduled: each pool is declared in
    airflow_settings.yaml, which the stack and production's airflow-init apply."""
    from twin.stack.airflow_objects import load_declared

    path, found = dag_file
    declared = {pool["pool_name"] for pool in load_declared()["pools"]} | {"default_pool"}
    used = {t["pool"] for dag in found["dags"] for t in dag["tasks"].values()}
    assert used <= declared, f"{path.name}: undeclared pools {sorted(used - declared)}"


def test_tasks_run_on_the_queues_workers_listen_on(dag_file) -> None:
    """Under the CeleryExecutor a task on a queue no worker consumes never runs: every task is
    on a queue of twin.assets, and a task that trains (its training pool) is on the training
    queue, which only the GPU workers consume, and nothing else is."""
    from twin.assets import (
        CRAWL_QUEUE,
        EMBEDDING_QUEUE,
        GENERAL_QUEUES,
        TRAINING_POOL,
        TRAINING_QUEUE,
    )

    routed = {
        ("twin_crawl", "crawl_source"): CRAWL_QUEUE,
        ("twin_features", "chunk_embed_load"): EMBEDDING_QUEUE,
    }
    path, found = dag_file
    for dag in found["dags"]:
        for task_id, t in dag["tasks"].items():
            assert t["queue"] in (*GENERAL_QUEUES, TRAINING_QUEUE), f"{path.name}:{task_id}"
            trains = t["pool"] == TRAINING_POOL
            assert (t["queue"] == TRAINING_QUEUE) == trains, f"{path.name}:{task_id}"
            wanted = routed.get((dag["dag_id"], task_id))
            assert wanted is None or t["queue"] == wanted, f"{path.name}:{task_id}"


def test_every_param_has_a_title_and_description(dag_file) -> None:
    """The trigger form labels a field with the Param's schema `title` and explains it with the
    Param's `description` (`Param(default, description=..., title=..., **schema)`)."""
    path, found = dag_file
    offenders = []
    for dag in found["dags"]:
        for name, param in dag["params"].items():
            title = param["schema"].get("title")
            missing = [
                what
                for what, text in (("title", title), ("description", param["description"]))
                if not isinstance(text, str) or not text.strip()
            ]
            if missing:
                offenders.append(f"{dag['dag_id']}.{name}: no {' or '.join(missing)}")
    assert not offenders, f"{path.name}: Params the trigger form cannot explain:\n  " + (
        "\n  ".join(offenders)
    )


def test_every_param_is_a_plain_form_field(dag_file) -> None:
    """The form picks a field's input from its schema's `type` and `enum`; `anyOf`, `oneOf` and
    `$ref` (what pydantic writes for `X | None` and enums) would show a raw JSON box instead."""
    path, found = dag_file
    composite = {"anyOf", "oneOf", "allOf", "$ref", "$defs"}
    offenders = []
    for dag in found["dags"]:
        for name, param in dag["params"].items():
            schema = param["schema"]
            parts = [schema, schema.get("items") if isinstance(schema.get("items"), dict) else {}]
            if not ("type" in schema or "enum" in schema) or any(composite & set(p) for p in parts):
                offenders.append(f"{dag['dag_id']}.{name}: {schema}")
    assert not offenders, f"{path.name}: Params the form cannot render:\n  " + "\n  ".join(
        offenders
    )
