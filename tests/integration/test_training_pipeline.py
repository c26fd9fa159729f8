"""Training end to end on the tiny model, CPU, gloo: SFT then DPO in 2 ranks, evaluation,
registration in the session's MLflow, and a rerun that trains nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sample_author.training import snapshot as sample_author_snapshot
from tests.conftest import PROJECT_ROOT
from twin.domain.models import CHALLENGER, ReviewState, VersionTag
from twin.store.tracking import tracking_client
from twin.training.params import TrainingParams

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def training_settings(stack_settings, tmp_path_factory):
    """The session's MLflow, a registered model and experiment of this module's own, and a
    scratch home for run folders (the base-model cache is shared across tests)."""
    import uuid

    tag = uuid.uuid4().hex[:8]
    home = tmp_path_factory.mktemp("training-home")
    return stack_settings.model_copy(
        update={
            "home": home,
            "model_cache_dir": shared_model_cache(),
            "registered_model": f"twin-llm-test-{tag}",
            "mlflow_experiment": f"twin-training-test-{tag}",
        }
    )


def shared_model_cache() -> Path:
    """Base models and DeepSpeed's compiled ops, kept across sessions (both content-keyed)."""
    return Path(os.environ.get("TWIN_MODEL_CACHE") or PROJECT_ROOT / ".twin" / "models")


def tiny_params(**overrides) -> TrainingParams:
    values = dict(
        base_model="tiny-llama", max_steps=4, dpo_max_steps=3, ranks=2, zero_stage=2,
        save_steps=2, max_length=256, eval_samples=4, max_new_tokens=12, bf16=False,
    )  # fmt: skip
    return TrainingParams(**(values | overrides))


@pytest.fixture(scope="module")
def snapshot():
    return sample_author_snapshot()


@pytest.fixture(scope="module")
def trained(training_settings, snapshot):
    from twin.training.pipeline import train_candidate

    return train_candidate(training_settings, tiny_params(), snapshot)


def test_sft_then_dpo_in_two_ranks_registers_a_pending_challenger(
    trained, training_settings, snapshot
):
    client = tracking_client(training_settings)
    name = training_settings.registered_model

    assert trained.status == "trained"
    version = client.get_model_version(name, trained.version)
    tags = version.tags
    assert tags[VersionTag.REVIEW] == ReviewState.PENDING
    assert tags[VersionTag.DATASET_VERSION] == snapshot.version.version
    assert tags[VersionTag.CONFIG_HASH] == tiny_params().config_hash()
    assert tags[VersionTag.BASE_MODEL] == "tiny-llama"
    assert len(tags[VersionTag.TOKENIZER_FINGERPRINT]) == 16
    assert "eval_dpo_perplexity" in tags
    # the gate's verdict agrees with the logged figures (the tiny model may go either way)
    better = float(tags["eval_dpo_perplexity"]) <= float(tags["eval_base_perplexity"])
    assert tags[VersionTag.EVALUATION_PASSED] in ("true", "false")
    assert tags[VersionTag.EVALUATION_NOTE].startswith("dpo: ")
    if not better:
        assert tags[VersionTag.EVALUATION_PASSED] == "false"
    assert client.get_model_version_by_alias(name, CHALLENGER).version == trained.version
    assert "Lineage" in version.description

    run = client.get_run(trained.run_id)
    assert run.data.params["zero_stage"] == "2" and run.data.params["ranks"] == "2"
    assert [m.step for m in client.get_metric_history(trained.run_id, "sft/loss")] == [1, 2, 3, 4]
    assert [m.step for m in client.get_metric_history(trained.run_id, "dpo/loss")] == [1, 2, 3]
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == snapshot.version.version[:32]
    artifacts = {a.path for a in client.list_artifacts(trained.run_id)}
    assert {"adapter", "deepspeed", "evaluation", "model_card.md"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(trained.run_id, "evaluation")}
    assert {
        "evaluation/results.json",
        "evaluation/loss.png",
        "evaluation/evaluation.png",
    } <= evaluation
    labels = [row["model"] for row in trained.evaluation["rows"]]
    assert labels == ["base", "sft", "dpo"]


def test_registered_version_loads_as_components(trained, training_settings):
    import mlflow

    mlflow.set_tracking_uri(training_settings.require("mlflow_tracking_uri"))
    parts = mlflow.transformers.load_model(
        f"models:/{training_settings.registered_model}/{trained.version}", return_type="components"
    )
    ids = parts["tokenizer"]("Ship the boring version first.", return_tensors="pt")["input_ids"]
    out = parts["model"].generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 3


def test_rerun_with_same_dataset_and_config_trains_nothing(trained, training_settings, snapshot):
    from twin.training.pipeline import run_dir, train_candidate

    folder = run_dir(training_settings, snapshot.version.version, tiny_params().config_hash())
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    again = train_candidate(training_settings, tiny_params(), snapshot)

    assert again.status == "skipped"
    assert again.version == trained.version
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_a_run_differing_only_in_dpo_reuses_the_sft_phase(trained, training_settings, snapshot):
    """The same dataset and SFT configuration without DPO: the finished SFT phase is brought
    over (weights linked, not retrained), and the new run's files stay its own."""
    from twin.training.pipeline import run_dir, train_candidate

    params = tiny_params(dpo=False)
    assert params.sft_hash() == tiny_params().sft_hash()
    dataset = snapshot.version.version
    first = run_dir(training_settings, dataset, tiny_params().config_hash()) / "sft"
    log_before = (first / "train.log").read_bytes()
    config_before = (first / "merged" / "generation_config.json").read_text()

    outcome = train_candidate(training_settings, params, snapshot)
    second = run_dir(training_settings, dataset, params.config_hash()) / "sft"

    assert outcome.status == "trained" and outcome.version != trained.version
    assert (second / "REUSED").read_text() == str(first)
    weights = Path("merged") / "model.safetensors"
    assert (second / weights).stat().st_ino == (first / weights).stat().st_ino
    assert not (second / "checkpoints").exists()  # no rank ran here
    assert (first / "train.log").read_bytes() == log_before
    # the SFT model is this run's candidate: its decoding is saved in this run's copy only
    assert (first / "merged" / "generation_config.json").read_text() == config_before
    assert (second / "merged" / "generation_config.json").read_text() != config_before
    assert [row["model"] for row in outcome.evaluation["rows"]] == ["base", "sft"]


def test_another_sft_configuration_trains_its_own_phase() -> None:
    assert tiny_params(learning_rate=1e-3).sft_hash() != tiny_params().sft_hash()
    assert tiny_params(max_steps=5).sft_hash() != tiny_params().sft_hash()
    assert tiny_params(beta=0.5, dpo_max_steps=2).sft_hash() == tiny_params().sft_hash()


def test_approve_and_reject_show_in_the_registry(trained, training_settings, monkeypatch) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    monkeypatch.setenv("REGISTERED_MODEL", training_settings.registered_model)
    client = tracking_client(training_settings)
    name, version = training_settings.registered_model, trained.version
    runner = CliRunner()

    approved = runner.invoke(app, ["models", "approve", version, "--by", "Grace", "--note", "ok"])
    tags = client.get_model_version(name, version).tags
    assert approved.exit_code == 0, approved.output
    assert (tags["review"], tags["reviewed_by"], tags["review_note"]) == ("approved", "Grace", "ok")
    assert tags["reviewed_at"].startswith("20")

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "approved" in listed.output

    no_reason = runner.invoke(app, ["models", "reject", version, "--reason", " "])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    missing = runner.invoke(app, ["models", "approve", "999", "--by", "Grace"])
    assert missing.exit_code == 2 and "no version 999" in missing.output

    rejected = runner.invoke(
        app, ["models", "reject", version, "--reason", "answers drift off topic", "--by", "Ada"]
    )
    after = client.get_model_version(name, version)
    assert rejected.exit_code == 0, rejected.output
    assert after.tags["review"] == "rejected"
    assert after.tags["review_note"] == "answers drift off topic"
    assert CHALLENGER not in (after.aliases or [])

    shown = runner.invoke(app, ["models", "show", version, "--card"])
    assert shown.exit_code == 0 and "rejected" in shown.output and "Lineage" in shown.output
