"""Training processes on the tiny model, CPU, gloo, 2 ranks: ZeRO-3 SFT, a SIGKILL mid-run that
resumes from its checkpoint, and bad parameters refused before any process starts."""

from __future__ import annotations

import signal
import time

import pytest

from sample_author.training import snapshot as sample_author_snapshot
from tests.integration.test_training_pipeline import shared_model_cache, tiny_params
from twin.store.base_models import resolve_base_model
from twin.training.data import read_jsonl, sft_rows, write_jsonl
from twin.training.launch import run_phase, start_phase, stop_tree
from twin.training.params import ParamsError
from twin.training.pipeline import phase_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from twin.settings import Settings

    home = tmp_path_factory.mktemp("training-runs")
    settings = Settings(TWIN_HOME=home, model_cache_dir=shared_model_cache())
    base = resolve_base_model("tiny-llama", shared_model_cache())
    data = write_jsonl(sft_rows(sample_author_snapshot()), home / "sft.jsonl")
    return settings, base, data, home


def merged_differs_from_base(merged, base) -> bool:
    from safetensors.torch import load_file

    trained = load_file(str(merged / "model.safetensors"))
    original = load_file(str(base / "model.safetensors"))
    names = [n for n in original if "q_proj" in n]
    return bool(names) and any(not (trained[n] == original[n]).all() for n in names)


def test_sft_with_zero3_in_two_ranks(setup) -> None:
    settings, base, data, home = setup
    config = phase_config(
        tiny_params(zero_stage=3, max_steps=3), "sft", str(base.path), data, home / "z3"
    )
    result = run_phase(settings, config)

    steps = [r["step"] for r in read_jsonl(config.metrics_path)]
    assert result.trained and steps == [1, 2, 3]
    assert all(r["ranks"] == 2 for r in read_jsonl(config.metrics_path))
    assert (config.adapter_dir / "adapter_model.safetensors").exists()
    assert merged_differs_from_base(config.merged_dir, base.path)
    assert '"stage": 3' in config.deepspeed_config.read_text()


def test_run_killed_with_sigkill_resumes_from_its_checkpoint(setup) -> None:
    settings, base, data, home = setup
    config = phase_config(
        tiny_params(max_steps=40, save_steps=4), "sft", str(base.path), data, home / "kill"
    )
    proc = start_phase(settings, config)
    deadline = time.monotonic() + 600
    while (
        not list(config.checkpoints.glob("checkpoint-*/trainer_state.json")) and proc.poll() is None
    ):
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    stop_tree(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    time.sleep(1)
    assert not config.trained_marker.exists(), "the run finished before it could be killed"
    saved = sorted(
        int(p.parent.name.split("-")[1])
        for p in config.checkpoints.glob("checkpoint-*/trainer_state.json")
    )
    logged_before = [r["step"] for r in read_jsonl(config.metrics_path)]

    result = run_phase(settings, config)
    rows = read_jsonl(config.metrics_path)
    after = [r["step"] for r in rows][len(logged_before) :]

    assert result.resumed_from == saved[-1]
    assert after[0] == saved[-1] + 1  # the step counter continues from the checkpoint
    assert after[-1] == 40 and after == list(range(saved[-1] + 1, 41))
    assert config.done_marker.read_text() == '{"global_step": 40}'


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"target_modules": ["q_proj", "c_attn"]}, "target_modules"),
        ({"ranks": 64}, "ranks"),
        ({"qlora": True}, "qlora"),
        ({"dataset_version": "deadbeefdeadbeef"}, "dataset_version"),
        ({"base_model": "no-such-model"}, "base_model"),
    ],
)
def test_bad_params_fail_before_launch_naming_the_parameter(
    stack_settings, overrides, param
) -> None:
    from twin.store.warehouse import scratch_database
    from twin.training.tasks import plan_training

    raw = tiny_params().model_dump(mode="json") | {"dataset_version": "sample"} | overrides
    with scratch_database(stack_settings.require("warehouse_dsn"), "tp") as dsn:
        settings = stack_settings.model_copy(
            update={"warehouse_dsn": dsn, "model_cache_dir": shared_model_cache()}
        )
        with pytest.raises(ParamsError) as caught:
            plan_training(raw, settings)  # the step before any process starts
    assert caught.value.param == param and f"'{param}'" in str(caught.value)


def test_two_nodes_train_as_one_node_with_two_ranks(setup) -> None:
    """Two launchers on this machine as nodes 0 and 1 (one rank each, meeting at a loopback
    rendezvous; node 1 joins through `join_run` as `twin models join` does) train as one
    launcher with two ranks does: the same ZeRO-2 loss at every step."""
    from concurrent.futures import ThreadPoolExecutor

    from twin.stack.process import free_port
    from twin.training.launch import join_run

    settings, base, data, home = setup
    one = phase_config(
        tiny_params(max_steps=3, dpo=False), "sft", str(base.path), data, home / "one-node"
    )
    run_phase(settings, one, timeout_s=600)
    rendezvous = f"127.0.0.1:{free_port()}"
    params = tiny_params(max_steps=3, dpo=False, ranks=1, nodes=2, rendezvous=rendezvous)
    two = phase_config(params, "sft", str(base.path), data, home / "two-nodes")
    with ThreadPoolExecutor(max_workers=1) as pool:
        node1 = pool.submit(join_run, settings, home / "two-nodes", 1, wait_s=300, poll_s=0.2)
        result = run_phase(settings, two, timeout_s=600)
        assert node1.result(timeout=600) == ["sft"]

    assert result.trained
    single = read_jsonl(one.metrics_path)
    spanned = read_jsonl(two.metrics_path)
    assert [r["step"] for r in spanned] == [r["step"] for r in single] == [1, 2, 3]
    assert all(r["ranks"] == 2 for r in spanned)  # world size: 2 nodes x 1 rank
    for a, b in zip(single, spanned, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-3 * max(1.0, abs(a["loss"])), (a, b)
    assert (two.output_dir / "train-node1.log").exists()
