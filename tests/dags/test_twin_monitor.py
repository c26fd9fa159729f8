"""`twin_monitor` under `dag.test()` against the real services: the window is evaluated and
recorded in serving.monitor_runs."""

import pytest

pytestmark = pytest.mark.integration


def test_monitor_dag_runs_and_records_its_window(run_dag, stack_settings) -> None:
    from twin.store.warehouse import warehouse_connection

    outcome = run_dag("twin_monitor")

    assert outcome.state == "success", outcome
    assert outcome.task_states == {"monitor_window": "success"}
    with warehouse_connection(stack_settings) as conn:
        runs = conn.execute(
            "select count(*) from serving.monitor_runs where monitor = 'twin_monitor'"
        ).fetchone()[0]
    assert runs >= 1
