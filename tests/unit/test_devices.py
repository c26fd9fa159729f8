"""One device policy: CPU by default; on CUDA half precision, `KIND_GPU` and one load of each
served version; a host with a GPU driver but a CPU-only torch is explained, not launched; QLoRA's
4-bit loading fits ZeRO-3."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from twin.domain.devices import (
    DeviceError,
    DevicePolicy,
    cpu_policy,
    cuda_policy,
    detect,
)
from twin.serving.configs import GENERATE_WITH_PARAMETER, LLM_MODEL, STREAM_MODEL
from twin.serving.repository import materialise_version, write_llm_configs
from twin.settings import Settings


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def params(config: model_config_pb2.ModelConfig) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    from twin.store.base_models import resolve_base_model

    root = tmp_path_factory.mktemp("devices")
    settings = Settings(TWIN_HOME=root, triton_model_repository=root / "models")
    folder = resolve_base_model("tiny-llama", root / "cache").path
    for version in (1, 2):
        materialise_version(settings, version, source_dir=folder)
    return settings


@pytest.mark.parametrize(("bf16", "dtype"), [(True, "bfloat16"), (False, "float16")])
def test_cuda_host_configs_are_kind_gpu_half_and_load_each_version_once(
    settings: Settings, bf16: bool, dtype: str
) -> None:
    write_llm_configs(settings, [1, 2], cuda_policy(bf16))
    root = Path(settings.triton_model_repository)
    llm, stream = (
        parse(root / LLM_MODEL / "config.pbtxt"),
        parse(root / STREAM_MODEL / "config.pbtxt"),
    )

    assert [g.kind for g in llm.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    assert [g.count for g in llm.instance_group] == [1]
    assert params(llm)["device"] == "cuda" and params(llm)["dtype"] == dtype
    as_read = {k: {"string_value": v} for k, v in params(llm).items()}  # what the backend gets
    assert DevicePolicy.from_parameters(as_read) == DevicePolicy("cuda", dtype)
    # the stream model holds no weights: it generates through twin_llm, same version
    assert params(stream)[GENERATE_WITH_PARAMETER] == LLM_MODEL
    assert "dtype" not in params(stream) and "device" not in params(stream)
    assert [g.kind for g in stream.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert list(stream.version_policy.specific.versions) == [1, 2]


def test_cpu_host_configs_stay_kind_cpu_float32(settings: Settings) -> None:
    write_llm_configs(settings, [1], cpu_policy())
    root = Path(settings.triton_model_repository)
    llm, stream = (
        parse(root / LLM_MODEL / "config.pbtxt"),
        parse(root / STREAM_MODEL / "config.pbtxt"),
    )
    assert [g.kind for g in llm.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert params(llm)["dtype"] == "float32" and params(stream)["dtype"] == "float32"
    assert GENERATE_WITH_PARAMETER not in params(stream)


def test_policy_detection() -> None:
    assert detect("auto", cuda_available=False, bf16_supported=False, driver=False) == cpu_policy()
    assert detect("cpu", cuda_available=True, bf16_supported=True, driver=True) == cpu_policy()
    assert detect("auto", cuda_available=True, bf16_supported=True) == DevicePolicy(
        "cuda", "bfloat16"
    )
    assert detect("auto", cuda_available=True, bf16_supported=False).dtype == "float16"
    with pytest.raises(DeviceError, match="TWIN_DEVICE=cuda was requested"):
        detect("cuda", cuda_available=False, bf16_supported=False, driver=False)
    with pytest.raises(DeviceError, match="TWIN_DEVICE"):
        detect("tpu")
    with pytest.raises(ValueError, match="float16 weights are for CUDA"):
        DevicePolicy.from_parameters(
            {"device": {"string_value": "cpu"}, "dtype": {"string_value": "float16"}}
        )


@pytest.fixture
def driver_host(tmp_path, monkeypatch) -> None:
    """A host with an NVIDIA driver (an `nvidia-smi` on PATH) and this CPU-only torch."""
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'NVIDIA-SMI 570.00'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tool.parent}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.delenv("TWIN_DEVICE", raising=False)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)


def test_a_driver_without_cuda_torch_is_explained_not_launched(driver_host, tmp_path) -> None:
    import torch

    from twin.training.launch import launch_env

    assert not torch.cuda.is_available()
    settings = Settings(TWIN_HOME=tmp_path, model_cache_dir=tmp_path / "models")
    with pytest.raises(DeviceError) as info:
        launch_env(settings, 1)
    message = str(info.value)
    assert "NVIDIA driver" in message and torch.__version__ in message
    assert "requirements-gpu.txt" in message and "TWIN_DEVICE=cpu" in message


def test_a_driver_host_may_train_on_the_cpu_deliberately(driver_host, tmp_path, monkeypatch):
    from twin.training.launch import launch_env

    monkeypatch.setenv("TWIN_DEVICE", "cpu")
    settings = Settings(TWIN_HOME=tmp_path, model_cache_dir=tmp_path / "models")
    env = launch_env(settings, 1)
    assert env["DS_ACCELERATOR"] == "cpu" and env["TWIN_DEVICE"] == "cpu"


def test_qlora_loads_4bit_per_rank_with_storage_in_the_compute_dtype() -> None:
    import torch

    from twin.training.worker import model_load_kwargs, quantization_config

    config = quantization_config(cuda_policy(True))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.bnb_4bit_quant_storage == torch.bfloat16  # ZeRO-3 partitions it like the rest
    assert quantization_config(cuda_policy(False)).bnb_4bit_quant_storage == torch.float16
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        model_load_kwargs(cpu_policy(), True, 0, zero3=False)
    assert model_load_kwargs(cpu_policy(), False, 0, zero3=False) == {"dtype": torch.float32}
    assert model_load_kwargs(cuda_policy(True), False, 1, zero3=False) == {"dtype": torch.bfloat16}
