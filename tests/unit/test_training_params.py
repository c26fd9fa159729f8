"""Training parameters are refused before launch with a message naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.training.config import deepspeed_config
from twin.training.evaluate import stylometry, stylometry_similarity
from twin.training.params import ParamsError, TrainingParams, check_params, parse_params
from twin.training.registry import load_metrics
from twin.training.tasks import split_params

LLAMA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def refused(raw: dict, **kwargs) -> ParamsError:
    """The error of the task's two checks: the fields' own bounds, then machine and model."""
    with pytest.raises(ParamsError) as caught:
        params = parse_params(raw)
        check_params(params, **({"module_names": LLAMA_MODULES, "cores": 2, "gpus": 0} | kwargs))
    return caught.value


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"ranks": 0}, "ranks"),
        ({"ranks": 3}, "ranks"),
        ({"qlora": True}, "qlora"),
        ({"target_modules": ("q_proj", "c_attn")}, "target_modules"),
        ({"target_modules": ()}, "target_modules"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"max_steps": 0}, "max_steps"),
        ({"dpo_max_steps": -2}, "dpo_max_steps"),
        ({"max_steps": -1, "epochs": 0}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_length": 15}, "max_length"),
    ],
)
def test_bad_params_are_named(overrides, param) -> None:
    error = refused(overrides)
    assert error.param == param
    assert f"'{param}'" in str(error)


def test_unknown_target_module_lists_the_models_projections() -> None:
    error = refused({"target_modules": ("c_attn",)})
    assert "c_attn" in str(error) and "q_proj" in str(error)


def test_qlora_passes_with_cuda_and_ranks_are_checked_against_gpus_not_cores() -> None:
    check_params(TrainingParams(qlora=True), module_names=LLAMA_MODULES, cores=1, gpus=2)
    with pytest.raises(ParamsError, match="'ranks'"):
        check_params(TrainingParams(ranks=4), module_names=LLAMA_MODULES, cores=8, gpus=2)


def test_good_params_pass() -> None:
    check_params(TrainingParams(ranks=2), module_names=LLAMA_MODULES, cores=2, gpus=0)


def test_loose_input_is_validated_by_name_and_booleans_stay_booleans() -> None:
    with pytest.raises(ParamsError, match="'zero_stage'"):
        parse_params({"zero_stage": 1})
    with pytest.raises(ParamsError, match="'lora_rank'"):
        parse_params({"lora_rank": 8})
    with pytest.raises(ParamsError, match="'dpo'"):
        parse_params({"dpo": "maybe"})
    assert parse_params({"target_modules": ["q_proj", "v_proj"]}).target_modules == (
        "q_proj",
        "v_proj",
    )
    version, params = split_params({"dataset_version": "abc12345", "lora_r": 4})
    assert (version, params.lora_r) == ("abc12345", 4)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"dpo": "false"}, "dpo"),
        ({"lora_r": "5"}, "lora_r"),
        ({"learning_rate": "1e-4"}, "learning_rate"),
        ({"max_steps": 2.0}, "max_steps"),
        ({"target_modules": "q_proj, v_proj"}, "target_modules"),
    ],
)
def test_strings_and_floats_the_form_refuses_are_refused_too(raw, param) -> None:
    """The form's JSON schema takes no "5" for a number nor "false" for a flag; nor does the
    task (a run started by `dags test -c` or the API would otherwise train something else)."""
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    assert caught.value.param == param


def test_an_empty_base_model_is_the_configured_one(monkeypatch) -> None:
    from twin.settings import Settings

    monkeypatch.setenv("TWIN_TRAINING_BASE_MODEL", "tiny-llama")
    assert split_params({"base_model": None})[1].base_model == "tiny-llama"
    assert split_params({})[1].base_model == "tiny-llama"
    assert split_params({"base_model": "smollm2-135m"})[1].base_model == "smollm2-135m"
    configured = Settings(training_base_model="some/hub-model")
    assert split_params({"base_model": None}, configured)[1].base_model == "some/hub-model"
    with pytest.raises(ParamsError, match="'base_model'"):
        split_params({"base_model": ""}, configured)


def test_config_hash_changes_with_what_is_trained_not_with_run_or_report_knobs() -> None:
    base = TrainingParams()
    assert base.config_hash() == TrainingParams().config_hash()
    assert base.config_hash() == TrainingParams(force=True, save_steps=3).config_hash()
    assert base.config_hash() == TrainingParams(eval_pairs=5, max_new_tokens=9).config_hash()
    # checkpointing trades memory for compute; the trained model is the same
    assert base.config_hash() == TrainingParams(gradient_checkpointing="on").config_hash()
    assert base.config_hash() != TrainingParams(lora_r=8).config_hash()
    assert base.config_hash() != TrainingParams(zero_stage=3).config_hash()


def test_deepspeed_configs_leave_precision_and_batch_to_the_trainer() -> None:
    two, three = deepspeed_config(2), deepspeed_config(3)
    assert two["zero_optimization"]["stage"] == 2 and three["zero_optimization"]["stage"] == 3
    assert three["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for config in (two, three):
        assert config["bf16"] == {"enabled": "auto"}
        assert config["train_micro_batch_size_per_gpu"] == "auto"


def test_stylometry_tells_a_terse_writer_from_a_wordy_one() -> None:
    author = ["Ship it. Test it. Rerun it on a Tuesday!", "Short lines; clear points."]
    same = ["Rerun it. Check it. Ship on Monday!", "Tight lines; sharp points."]
    wordy = [
        "There are many various considerations that one should carefully take into account when "
        "thinking about the overall reliability and robustness of complex data processing systems"
    ]
    reference = stylometry(author)
    assert stylometry_similarity(stylometry(same), reference) > stylometry_similarity(
        stylometry(wordy), reference
    )
    assert stylometry_similarity(reference, reference) == 1.0


def test_a_resumed_runs_repeated_steps_keep_the_latest_row(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [(1, 3.0), (2, 2.9), (3, 2.8), (2, 2.7), (3, 2.6), (4, 2.5)]
    path.write_text(
        "".join(f'{{"phase": "sft", "step": {s}, "loss": {v}, "time": 0}}\n' for s, v in rows)
        + '{"phase": "sft", "step": 5, "lo'  # a line cut by a kill
    )
    loaded = load_metrics([path])
    assert [(r["step"], r["loss"]) for r in loaded] == [(1, 3.0), (2, 2.7), (3, 2.6), (4, 2.5)]


def test_author_picks_the_dataset_and_is_no_training_parameter() -> None:
    """The form's Author (whose `latest` dataset) reaches the plan beside the hyperparameters."""
    from twin.settings import Settings

    version, params = split_params(
        {"dataset_version": "latest", "author": "Ada", "lora_r": 4}, Settings()
    )
    assert (version, params.lora_r) == ("latest", 4)


def test_a_run_across_nodes_names_where_they_meet() -> None:
    from twin.training.launch import launch_command, rendezvous_of

    with pytest.raises(ParamsError, match="rendezvous"):
        parse_params({"nodes": 2})
    with pytest.raises(ParamsError, match="rendezvous"):
        parse_params({"nodes": 2, "rendezvous": "no port"})
    params = parse_params({"nodes": 2, "ranks": 1, "rendezvous": "node0.internal:29400"})
    assert rendezvous_of(params) == ("node0.internal", 29400)
    command = launch_command(
        Path("w.json"), 1, 29400, nodes=2, node_rank=1, master="node0.internal"
    )
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=node0.internal"} <= set(command)
    # where node 0 listens does not change the model: one-node runs keep their hash
    moved = params.model_copy(update={"rendezvous": "elsewhere:29500"})
    assert moved.config_hash() == params.config_hash()
    assert TrainingParams().config_hash() != TrainingParams(nodes=2, rendezvous="h:1").config_hash()


def test_mixed_precision_auto_is_bf16_only_where_the_hardware_multiplies_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from twin.domain import devices
    from twin.domain.devices import cpu_policy, cuda_policy, mixed_precision, precision_name

    monkeypatch.setattr(devices, "native_bf16", lambda: False)
    assert TrainingParams().bf16 == "auto"
    assert mixed_precision("auto", cpu_policy()) is False  # emulated bf16: about 3x slower
    assert mixed_precision("auto", cuda_policy(False)) is True  # fp16 on the GPU
    assert mixed_precision("on", cpu_policy()) is True
    assert mixed_precision("off", cuda_policy(True)) is False
    # the name a run records
    assert precision_name("auto", cpu_policy()) == "float32"
    assert precision_name("auto", cuda_policy(False)) == "float16"
    assert precision_name("auto", cuda_policy(True)) == "bfloat16"
    assert precision_name("on", cpu_policy()) == "bfloat16"
    monkeypatch.setattr(devices, "native_bf16", lambda: True)
    assert mixed_precision("auto", cpu_policy()) is True
    assert precision_name("auto", cpu_policy()) == "bfloat16"
    # the switch earlier runs and callers gave as a bool
    assert TrainingParams(bf16=True).bf16 == "on"
    assert parse_params({"bf16": False}).bf16 == "off"
    with pytest.raises(ParamsError, match="bf16"):
        parse_params({"bf16": "fast"})
