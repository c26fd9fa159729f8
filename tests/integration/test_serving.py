"""twin_llm on the stack's real Triton: a tiny registered model over HTTP, gRPC, the generate
endpoint and streaming; dynamic batching; input validation; the tokenizer fingerprint check."""

from __future__ import annotations

import concurrent.futures
import json
import math
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from twin.serving.client import generate_text, http_client, stream_text
from twin.serving.repository import (
    RepositoryError,
    load_versions,
    materialise_version,
    served_versions,
    version_record,
)
from twin.settings import Settings

pytestmark = pytest.mark.integration

PROMPT = "<|im_start|>user\nWrite about reliable pipelines.<|im_end|>\n<|im_start|>assistant\n"


def register_version(settings: Settings, folder: Path) -> int:
    """Register `folder` as a new version, as the training stage does (transformers flavor,
    tokenizer fingerprint tag)."""
    from twin.serving.bootstrap import register_folder

    return register_folder(settings, folder)


def test_materialise_is_idempotent(served_llm) -> None:
    settings, version = served_llm
    folder = settings.triton_model_repository / materialise_version(settings, version)
    weights = next((folder / "hf").glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    again = settings.triton_model_repository / materialise_version(settings, version)
    assert again == folder
    assert weights.stat().st_mtime_ns == before  # not fetched again
    record = version_record(settings, version)
    assert record.fingerprint_origin == "registry tag"
    assert record.source == f"models:/{settings.registered_model}/{version}"
    assert (folder.parents[1] / "twin_llm_stream" / str(version) / "hf").resolve() == (
        folder / "hf"
    ).resolve()


def test_http_grpc_and_generate_endpoint(served_llm) -> None:
    settings, version = served_llm
    via_http = generate_text(settings, PROMPT, max_tokens=8, version=version)
    via_grpc = generate_text(settings, PROMPT, max_tokens=8, protocol="grpc")
    url = f"{settings.triton_http_url}/v2/models/twin_llm/versions/{version}/generate"
    via_generate = httpx.post(url, json={"prompt": PROMPT, "max_tokens": 8}, timeout=60).json()
    assert 1 <= via_http["completion_tokens"] <= 8
    assert via_http["prompt_tokens"] > 5
    assert via_http["text"]
    assert via_grpc == via_http  # greedy decoding: the same answer whatever the protocol
    assert via_generate["text"] == via_http["text"]
    assert via_generate["completion_tokens"] == via_http["completion_tokens"]


def test_streaming_over_grpc_and_generate_stream(served_llm) -> None:
    settings, version = served_llm
    whole = generate_text(settings, PROMPT, max_tokens=12)["text"]
    pieces = list(stream_text(settings, PROMPT, max_tokens=12, version=version))
    url = f"{settings.triton_http_url}/v2/models/twin_llm_stream/generate_stream"
    events = []
    with httpx.stream("POST", url, json={"prompt": PROMPT, "max_tokens": 12}, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
    assert len(pieces) > 1
    assert "".join(pieces) == whole
    assert "".join(e.get("text", "") for e in events) == whole


def test_concurrent_requests_are_batched_and_match_single_answers(served_llm) -> None:
    settings, _ = served_llm
    prompts = [
        PROMPT.replace("reliable pipelines", topic)
        for topic in (
            "tests",
            "dbt models",
            "retrieval evaluation",
            "Airflow",
            "vectors",
            "a",
            "b c",
            "idempotent reruns",
        )
    ]
    alone = [generate_text(settings, p, max_tokens=6) for p in prompts]
    client = http_client(settings)
    before = client.get_inference_statistics("twin_llm")["model_stats"]
    client.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: generate_text(settings, p, max_tokens=6), prompts))
    client = http_client(settings)
    after = client.get_inference_statistics("twin_llm")["model_stats"]
    client.close()

    def counts(stats):
        return sum(s["inference_count"] for s in stats), sum(s["execution_count"] for s in stats)

    inferences = counts(after)[0] - counts(before)[0]
    executions = counts(after)[1] - counts(before)[1]
    assert [r["text"] for r in together] == [r["text"] for r in alone]
    assert inferences == len(prompts)
    assert executions < len(prompts)  # some requests shared one padded batch


def test_requests_that_differ_only_in_seed_share_a_batch_and_keep_their_answers(
    served_llm,
) -> None:
    """Sampled rows draw from generators of their own: a request's answer is the one it gets
    alone, and requests whose settings differ only in the seed are answered in one batch."""
    settings, _ = served_llm

    def ask(seed: int) -> str:
        result = _infer_raw(
            settings,
            "http",
            prompt=_prompt(PROMPT.encode()),
            max_tokens=(np.array([[8]], dtype=np.int32), "INT32"),
            temperature=(np.array([[1.3]], dtype=np.float32), "FP32"),
            seed=(np.array([[seed]], dtype=np.int32), "INT32"),
        )
        return result.as_numpy("text").reshape(-1)[0].decode()

    seeds = [1, 2, 3, 4] * 2
    alone = [ask(seed) for seed in seeds]
    assert alone[:4] == alone[4:] and len(set(alone)) > 1  # sampled: the seed matters
    client = http_client(settings)
    before = client.get_inference_statistics("twin_llm")["model_stats"]
    client.close()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, seeds))
    client = http_client(settings)
    after = client.get_inference_statistics("twin_llm")["model_stats"]
    client.close()
    executions = sum(s["execution_count"] for s in after) - sum(
        s["execution_count"] for s in before
    )
    assert executions < len(seeds)  # requests shared a batch
    # (with one generator for a whole batch, two rows of the same seed would draw apart)
    assert together == alone


def _infer_raw(settings: Settings, protocol: str, **values):
    module = triton_http if protocol == "http" else triton_grpc
    client = http_client(settings, timeout_s=60) if protocol == "http" else None
    if client is None:
        from twin.serving.client import grpc_client

        client = grpc_client(settings)
    inputs = []
    for name, (array, dtype) in values.items():
        item = module.InferInput(name, list(array.shape), dtype)
        item.set_data_from_numpy(array)
        inputs.append(item)
    try:
        return client.infer("twin_llm", inputs)
    finally:
        client.close()


def _prompt(raw: bytes):
    return np.array([[raw]], dtype=np.object_), "BYTES"


BAD_INPUTS = {
    "empty prompt": ({"prompt": _prompt(b"  ")}, "'prompt' is empty"),
    "100 KB prompt": ({"prompt": _prompt(b"word " * 20_000)}, "'prompt' is 100000 bytes"),
    "invalid UTF-8": ({"prompt": _prompt(b"caf\xc3(")}, "not valid UTF-8"),
    "max_tokens -1": (
        {"prompt": _prompt(b"hi"), "max_tokens": (np.array([[-1]], dtype=np.int32), "INT32")},
        "'max_tokens' is -1",
    ),
    "max_tokens 10^6": (
        {"prompt": _prompt(b"hi"), "max_tokens": (np.array([[10**6]], dtype=np.int32), "INT32")},
        "'max_tokens' is 1000000",
    ),
    "temperature NaN": (
        {
            "prompt": _prompt(b"hi"),
            "temperature": (np.array([[math.nan]], dtype=np.float32), "FP32"),
        },
        "'temperature' is nan",
    ),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(served_llm, case, protocol):
    settings, _ = served_llm
    values, message = BAD_INPUTS[case]
    with pytest.raises(InferenceServerException) as caught:
        _infer_raw(settings, protocol, **values)
    assert message in caught.value.message()
    assert generate_text(settings, PROMPT, max_tokens=3)["completion_tokens"] >= 1


def test_missing_prompt_on_generate_endpoint_is_refused(served_llm) -> None:
    settings, _ = served_llm
    r = httpx.post(
        f"{settings.triton_http_url}/v2/models/twin_llm/generate",
        json={"max_tokens": 4},
        timeout=30,
    )
    assert r.status_code >= 400
    assert "prompt" in r.text


def test_tokenizer_fingerprint_mismatch_refuses_to_load(served_llm, tiny_model_dir) -> None:
    settings, version = served_llm
    bad = version + 100
    folder = settings.triton_model_repository / materialise_version(
        settings, bad, source_dir=tiny_model_dir
    )
    record = json.loads((folder / "version.json").read_text())
    record["tokenizer_fingerprint"] = "0" * 16
    for path in (
        folder / "version.json",
        folder.parents[1] / "twin_llm_stream" / str(bad) / "version.json",
    ):
        path.write_text(json.dumps(record))
    with pytest.raises(RepositoryError, match="tokenizer fingerprint mismatch"):
        load_versions(settings, [bad])
    # the registered version keeps serving; the bad one is taken out of the policy again
    from twin.serving.repository import unload_version

    unload_version(settings, bad)
    assert served_versions(settings) == [version]
    assert generate_text(settings, PROMPT, max_tokens=3, version=version)["text"] is not None


def instance_processes(settings: Settings, version: int) -> set[int]:
    """Process ids of the Python-backend instances Triton runs for `twin_llm` version `version`
    (each instance is a stub process of the server's, started when the version loads)."""
    repository = str(settings.triton_model_repository)
    model_file = f"{repository}/twin_llm/{version}/model.py"
    found: set[int] = set()
    for server in psutil.process_iter(["cmdline"]):
        if f"--model-repository={repository}" not in (server.info["cmdline"] or []):
            continue
        for child in server.children(recursive=True):
            try:
                line = child.cmdline()
            except psutil.NoSuchProcess:
                continue
            # the stub that only completes the config is named after the model, not an instance
            if model_file in line and any(a.startswith("twin_llm_") for a in line):
                found.add(child.pid)
    return found


def test_a_version_loaded_and_unloaded_beside_the_served_one_leaves_it_loaded(
    served_llm, tiny_model_dir
) -> None:
    """A challenger loaded beside the champion, then unloaded, leaves the champion's instance as it
    was: nothing of twin_llm's own folder changes but its config, so Triton only updates the
    version policy (a reload would load the champion's weights a second time, on a GPU too)."""
    from twin.serving.repository import unload_version

    settings, version = served_llm
    before = instance_processes(settings, version)
    assert before, "no instance process found for the served version"
    other = version + 200
    materialise_version(settings, other, source_dir=tiny_model_dir)
    assert load_versions(settings, [other]) == [version, other]
    assert generate_text(settings, PROMPT, max_tokens=3, version=other)["text"] is not None
    assert instance_processes(settings, other)
    assert instance_processes(settings, version) == before

    assert unload_version(settings, other) == [version]
    assert instance_processes(settings, version) == before
    assert generate_text(settings, PROMPT, max_tokens=3, version=version)["text"] is not None


def test_stream_generations_beyond_the_cap_are_refused_as_busy(served_llm) -> None:
    """twin_llm_stream runs at most `serving_stream_max_concurrent` generations (here 1): a second
    request while one streams gets a clear "busy" error at once; the slot comes back after."""
    from twin.serving.repository import write_llm_configs

    settings, version = served_llm
    capped = settings.model_copy(update={"serving_stream_max_concurrent": 1})

    def reload_stream(with_settings: Settings) -> None:
        write_llm_configs(with_settings, served_versions(with_settings))
        client = http_client(with_settings, timeout_s=300)  # a model load on a busy machine
        try:
            client.load_model("twin_llm_stream")
        finally:
            client.close()

    try:
        reload_stream(capped)
        first = stream_text(settings, PROMPT, max_tokens=64, version=version)
        pieces = [next(first)]  # the first generation holds the only slot from now on
        with pytest.raises(InferenceServerException) as caught:
            list(stream_text(settings, PROMPT, max_tokens=4, version=version))
        assert "twin_llm_stream is busy: 1 generation(s) are running" in caught.value.message()
        pieces += list(first)
        assert len(pieces) > 1  # the first one was not disturbed
        # its slot is given back once its thread has sent the final response
        deadline = time.monotonic() + 10
        while True:
            try:
                assert list(stream_text(settings, PROMPT, max_tokens=4, version=version))
                break
            except InferenceServerException as exc:
                if "busy" not in exc.message() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        reload_stream(settings)
