"""Helpers to run DAGs from `dags/` with `dag.test()` against the session's stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@dataclass(frozen=True)
class DagRunOutcome:
    state: str
    task_states: dict[str, str]


@pytest.fixture(scope="session")
def run_dag(stack_settings):
    """Run a DAG of the project under `dag.test()`; return the run's and each task's state."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors

    def run(
        dag_id: str, conf: dict | None = None, mark_success: str | None = None
    ) -> DagRunOutcome:
        dag_run = bag.get_dag(dag_id).test(run_conf=conf, mark_success_pattern=mark_success)
        tasks = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        return DagRunOutcome(str(dag_run.state), tasks)

    return run
