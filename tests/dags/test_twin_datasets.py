"""`twin_datasets` under `dag.test()` on the sample author's marts: offline, a rerun, SmolLM2."""

import psycopg
import pytest

from tests.integration.test_feature_pipeline import sample_marts
from twin.settings import endpoint_to_connection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def marts_env(stack_settings):
    """Sample marts in a scratch warehouse; the DAG's tasks read it from the environment."""
    with sample_marts(stack_settings, "dagds") as settings, pytest.MonkeyPatch.context() as mp:
        dsn = settings.require("warehouse_dsn")
        mp.setenv("WAREHOUSE_DSN", dsn)
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", endpoint_to_connection("warehouse_dsn", dsn))
        yield settings


def versions(settings) -> list[tuple[str, dict]]:
    with psycopg.connect(settings.require("warehouse_dsn")) as conn:
        return conn.execute(
            "select version, generator_config from ml.dataset_versions order by created_at"
        ).fetchall()


def test_offline_build_publishes_then_a_rerun_skips(run_dag, marts_env) -> None:
    first = run_dag("twin_datasets", conf={"generator": "offline"})
    assert first.state == "success", first
    assert first.task_states["publish_if_new"] == "success"
    assert len(versions(marts_env)) == 1

    second = run_dag("twin_datasets", conf={"generator": "offline"})
    assert second.state == "success", second
    assert second.task_states["publish_if_new"] == "skipped"
    assert len(versions(marts_env)) == 1


def test_smollm2_capped_builds_its_own_version(run_dag, marts_env) -> None:
    conf = {"generator": "smollm2", "max_instructions": 3, "max_preferences": 2}
    run = run_dag("twin_datasets", conf=conf)
    assert run.state == "success", run
    assert run.task_states["publish_if_new"] == "success"
    _, config = versions(marts_env)[-1]
    assert config["generator"] == "local-smollm2-135m"
    assert config["max_instructions"] == 3


def test_bad_params_fail_with_the_param_named(run_dag, marts_env) -> None:
    run = run_dag("twin_datasets", conf={"generator": "smollm2", "max_instructions": 0})
    assert run.state == "failed"
    assert run.task_states["build_dataset"] == "failed"
