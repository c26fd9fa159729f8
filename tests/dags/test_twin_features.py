"""`twin_features` under `dag.test()` on the sample author's marts."""

import psycopg
import pytest

from tests.integration.test_feature_pipeline import sample_marts
from twin.settings import endpoint_to_connection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def marts_env(stack_settings):
    """Sample marts in a scratch warehouse; the DAG's tasks read it from the environment."""
    with sample_marts(stack_settings, "dagfeat") as settings, pytest.MonkeyPatch.context() as mp:
        dsn = settings.require("warehouse_dsn")
        mp.setenv("WAREHOUSE_DSN", dsn)
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", endpoint_to_connection("warehouse_dsn", dsn))
        yield settings


def chunk_xmins(settings) -> dict[str, str]:
    """Each chunk's row version in the active index table: unchanged when nothing was rewritten."""
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        version = conn.execute(
            "select version_id from vectors.index_versions where status = 'active'"
        ).fetchone()[0]
        rows = conn.execute(f"select chunk_id, xmin::text from vectors.chunks_{version}")
        return dict(rows.fetchall())


def test_twin_features_indexes_then_does_nothing_on_a_rerun(run_dag, marts_env) -> None:
    first = run_dag("twin_features")
    rows_after_first = chunk_xmins(marts_env)
    second = run_dag("twin_features")

    assert first.state == "success", first
    assert first.task_states["retrieval_gate"] == "success"
    assert first.task_states["publish_if_changed"] == "success"
    assert len(rows_after_first) > 100
    assert second.state == "success", second
    assert second.task_states["publish_if_changed"] == "skipped"
    assert chunk_xmins(marts_env) == rows_after_first  # not one row rewritten
