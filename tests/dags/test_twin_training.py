"""`twin_training` under `dag.test()`: SmolLM2 on the sample author (a few steps), registered
as a pending challenger; a rerun with the same dataset and configuration publishes nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_training_pipeline import shared_model_cache

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEW_STEPS = {
    "dataset_version": "sample",
    "base_model": "smollm2-135m",
    "max_steps": 2,
    "dpo_max_steps": 2,
    "max_length": 128,
    "ranks": 2,
    "zero_stage": 2,
    "save_steps": 2,
    "eval_samples": 2,
    "eval_pairs": 4,
    "max_new_tokens": 8,
}


@pytest.fixture(scope="module")
def training_env(stack_settings, tmp_path_factory):
    """A registered model of its own and a scratch home; tasks read them from the environment."""
    name = f"twin-llm-dag-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(tmp_path_factory.mktemp("dag-training")))
        mp.setenv("TWIN_MODEL_CACHE", str(shared_model_cache()))
        mp.setenv("REGISTERED_MODEL", name)
        mp.setenv("MLFLOW_EXPERIMENT", f"{name}-runs")
        yield stack_settings.model_copy(update={"registered_model": name})


def test_twin_training_registers_a_challenger_then_skips_a_rerun(run_dag, training_env) -> None:
    from twin.domain.models import CHALLENGER, ReviewState, VersionTag
    from twin.store.tracking import tracking_client

    first = run_dag("twin_training", conf=FEW_STEPS)
    second = run_dag("twin_training", conf=FEW_STEPS)

    assert first.state == "success", first
    assert first.task_states["publish_candidate"] == "success"
    client = tracking_client(training_env)
    version = client.get_model_version_by_alias(training_env.registered_model, CHALLENGER)
    assert version.tags[VersionTag.REVIEW] == ReviewState.PENDING
    assert version.tags[VersionTag.BASE_MODEL] == "smollm2-135m"
    assert second.state == "success", second
    assert second.task_states["train_evaluate_register"] == "success"
    assert second.task_states["publish_candidate"] == "skipped"
    versions = client.search_model_versions(f"name = '{training_env.registered_model}'")
    assert len(versions) == 1


def test_bad_params_fail_the_validation_task(run_dag, training_env) -> None:
    outcome = run_dag("twin_training", conf=FEW_STEPS | {"target_modules": ["c_attn"]})
    assert outcome.state == "failed"
    assert outcome.task_states["validate_and_plan"] == "failed"
    assert outcome.task_states["train_evaluate_register"] == "upstream_failed"
