"""Every generated config.pbtxt parses with Triton's model-config protobuf and is wired right:
the Python-backend models, and the TensorRT-LLM repository (ensemble steps name real tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from twin.serving.backend_names import PYTHON, TENSORRT_LLM
from twin.serving.configs import llm_config, rag_config, stream_config
from twin.serving.repository import materialise_version
from twin.serving.trtllm import build_trtllm_repository, pipeline_names
from twin.serving.trtllm.repository import weights_digest
from twin.settings import Settings


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("serving")
    return Settings(TWIN_HOME=root, triton_model_repository=root / "models")


@pytest.fixture(scope="module")
def trt_repo(settings: Settings, tmp_path_factory) -> Path:
    from twin.store.base_models import resolve_base_model

    folder = resolve_base_model("tiny-llama", tmp_path_factory.mktemp("cache")).path
    materialise_version(settings, 3, source_dir=folder)
    return build_trtllm_repository(settings, 3, settings.home / "trt", max_batch_size=16)


def test_python_backend_configs_parse_and_carry_the_contract(settings: Settings) -> None:
    llm = parse(llm_config(settings, [2, 1]))
    unbatched = parse(
        llm_config(settings.model_copy(update={"serving_dynamic_batching": False}), [1])
    )
    stream = parse(stream_config(settings, [1]))
    rag = parse(rag_config(settings))

    assert [i.name for i in llm.input] == [
        "prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "repetition_penalty",
        "seed",
    ]
    assert [i.optional for i in llm.input] == [False, True, True, True, True, True]
    assert {o.name for o in llm.output} == {PYTHON.text, *PYTHON.counts}
    assert llm.HasField("dynamic_batching") and not unbatched.HasField("dynamic_batching")
    assert list(llm.version_policy.specific.versions) == [1, 2]
    assert llm.max_batch_size == settings.serving_max_batch_size
    assert stream.model_transaction_policy.decoupled and stream.max_batch_size == 0
    assert [i.name for i in rag.input][:2] == ["query", "author"]
    assert {o.name for o in rag.output} == {"answer", "sources", "meta"}
    assert rag.instance_group[0].count == settings.serving_rag_instances
    params = {k: v.string_value for k, v in llm.parameters.items()}
    assert params["max_new_tokens"] == str(settings.serving_max_new_tokens)
    assert params["cpu_threads"] == "0"  # torch's default unless set


def test_cpu_threads_reach_both_llm_models(settings: Settings) -> None:
    one = settings.model_copy(update={"serving_cpu_threads": 1})
    for config in (llm_config(one, [1]), stream_config(one, [1])):
        params = {k: v.string_value for k, v in parse(config).parameters.items()}
        assert params["cpu_threads"] == "1"


def test_every_trtllm_config_parses_with_its_folder_name(trt_repo: Path) -> None:
    names = pipeline_names(3)
    configs = {
        model: parse((trt_repo / name / "config.pbtxt").read_text())
        for model, name in names.items()
    }
    assert sorted(p.name for p in trt_repo.iterdir() if (p / "config.pbtxt").exists()) == sorted(
        names.values()
    )
    for model, config in configs.items():
        assert config.name == names[model] == f"{model}_v3"
        assert config.max_batch_size == 16
        assert (trt_repo / names[model] / "1").is_dir()
    assert configs["tensorrt_llm"].backend == "tensorrtllm"
    assert configs["ensemble"].platform == "ensemble"
    params = {k: v.string_value for k, v in configs["tensorrt_llm"].parameters.items()}
    assert params["gpt_model_path"] == "/models/trtllm_assets/v3/engine"
    tokenizer = configs["preprocessing"].parameters["tokenizer_dir"].string_value
    assert tokenizer == "/models/trtllm_assets/v3/hf"
    # the BLS calls this version's engine, not another version's
    bls = configs["tensorrt_llm_bls"].parameters["tensorrt_llm_model_name"].string_value
    assert bls == "tensorrt_llm_v3"
    assert (trt_repo / "trtllm_assets" / "v3" / "hf" / "config.json").exists()
    build = json.loads((trt_repo / "trtllm_assets" / "v3" / "build.json").read_text())
    assert build["models"] == names
    assert build["weights_sha256"] == weights_digest(trt_repo / "trtllm_assets" / "v3" / "hf")


def test_each_version_gets_its_own_pipeline(settings: Settings, trt_repo: Path) -> None:
    from twin.store.base_models import resolve_base_model

    folder = resolve_base_model("tiny-llama", settings.home / "cache").path
    materialise_version(settings, 4, source_dir=folder)
    build_trtllm_repository(settings, 4, trt_repo, max_batch_size=16)
    ensemble = parse((trt_repo / "ensemble_v4" / "config.pbtxt").read_text())
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [
        "preprocessing_v4",
        "tensorrt_llm_v4",
        "postprocessing_v4",
    ]
    assert parse((trt_repo / "ensemble_v3" / "config.pbtxt").read_text()).name == "ensemble_v3"


def test_ensemble_steps_name_real_tensors_and_every_internal_tensor_is_produced(
    trt_repo: Path,
) -> None:
    names = pipeline_names(3)
    configs = {
        model: parse((trt_repo / name / "config.pbtxt").read_text())
        for model, name in names.items()
    }
    by_name = {names[m]: c for m, c in configs.items()}
    ensemble = configs["ensemble"]
    produced = {i.name for i in ensemble.input}
    consumed: set[str] = set()
    for step in ensemble.ensemble_scheduling.step:
        model = by_name[step.model_name]
        inputs, outputs = {i.name for i in model.input}, {o.name for o in model.output}
        assert set(step.input_map) <= inputs, (step.model_name, set(step.input_map) - inputs)
        assert set(step.output_map) <= outputs, (step.model_name, set(step.output_map) - outputs)
        required = {i.name for i in model.input if not i.optional}
        assert required <= set(step.input_map), (step.model_name, required - set(step.input_map))
        consumed |= set(step.input_map.values())
        produced |= set(step.output_map.values())
    assert consumed <= produced, consumed - produced
    assert {o.name for o in ensemble.output} <= produced


def test_twin_rag_calls_the_bls_model_by_its_real_tensor_names(trt_repo: Path) -> None:
    bls = parse((trt_repo / "tensorrt_llm_bls_v3" / "config.pbtxt").read_text())
    assert TENSORRT_LLM.model_name(3) == bls.name
    assert TENSORRT_LLM.triton_version(3) == -1
    assert bls.model_transaction_policy.decoupled is TENSORRT_LLM.decoupled
    names = {i.name for i in bls.input}
    assert {TENSORRT_LLM.prompt, TENSORRT_LLM.max_tokens, TENSORRT_LLM.stream} <= names
    assert TENSORRT_LLM.text in {o.name for o in bls.output}


def test_the_standin_has_the_bls_exact_inputs_and_outputs(settings: Settings, trt_repo) -> None:
    from twin.serving.trtllm import install_standin

    folder = install_standin(settings, 3)
    standin = parse((folder / "config.pbtxt").read_text())
    bls = parse((trt_repo / "tensorrt_llm_bls_v3" / "config.pbtxt").read_text())
    assert standin.name == bls.name
    assert list(standin.input) == list(bls.input)
    assert list(standin.output) == list(bls.output)
    assert standin.model_transaction_policy.decoupled is True
    weights = standin.parameters["twin_standin_weights"].string_value
    assert (Path(weights) / "config.json").exists()
    assert (folder / "1" / "model.py").exists()
