"""What the Triton Python-backend models (`templates/*.py`) share: reading inputs, answering
with a Triton error, loading a registered version once per model instance, and the cap on
concurrent streamed generations.

Imported only inside Triton's Python backend, where `triton_python_backend_utils` exists.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

from twin.domain.devices import DevicePolicy, use_cpu_threads
from twin.serving.configs import (
    CPU_THREADS_PARAMETER,
    GENERATE_WITH_PARAMETER,
    STREAM_GENERATIONS_PARAMETER,
)
from twin.serving.generation import load_version_generator
from twin.serving.validation import RequestLimits
from twin.settings import Settings


def input_values(request: Any, name: str) -> Any:
    """The flattened values of input `name` (None when the request has no such input)."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy().reshape(-1)


def first_value(request: Any, name: str) -> Any:
    """The first value of input `name` (None when absent or empty)."""
    values = input_values(request, name)
    return values[0] if values is not None and values.size else None


def error_response(message: str, invalid: bool = True) -> Any:
    """A response carrying a Triton error: INVALID_ARG for the client's input, else UNAVAILABLE."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid else "UNAVAILABLE", None)
    error = (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


def load_llm(args: dict[str, str]) -> tuple[RequestLimits, Any]:
    """The request limits of the model's configuration and its version's generator, on the
    device and in the dtype the configuration names (`KIND_GPU`: this instance's GPU); a version
    whose tokenizer does not match its record refuses to load (TritonModelException)."""
    config = json.loads(args["model_config"])
    version_dir = Path(args["model_repository"]) / args["model_version"]
    parameters = config.get("parameters", {})
    limits = RequestLimits.from_parameters(parameters)
    threads = (parameters.get(CPU_THREADS_PARAMETER) or {}).get("string_value")
    use_cpu_threads(int(threads or 0))
    through = (parameters.get(GENERATE_WITH_PARAMETER) or {}).get("string_value")
    if through:
        return limits, ModelGenerator(version_dir, int(args["model_version"]), through)
    try:
        policy = DevicePolicy.from_parameters(parameters)
        device = int(args.get("model_instance_device_id") or 0)
        generator = load_version_generator(version_dir, args["model_version"], policy, device)
    except ValueError as err:
        raise pb_utils.TritonModelException(str(err)) from None
    return limits, generator


class ModelGenerator:
    """A version's generator without weights: the tokenizer and settings for validation, the
    text from model `model` (the same version, which holds the weights) by BLS. Streams the
    completion as one piece: a GPU holds each served version once."""

    def __init__(self, version_dir: Path, version: int, model: str) -> None:
        from transformers import AutoConfig, AutoTokenizer

        from twin.domain.generation import GenerationSettings

        self.model, self.version = model, version
        self.tokenizer = AutoTokenizer.from_pretrained(version_dir / "hf")
        config = AutoConfig.from_pretrained(version_dir / "hf")
        self.max_context = int(getattr(config, "max_position_embeddings", 2048))
        self.settings = GenerationSettings.load(version_dir / "hf")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def resolve(self, temperature: float | None = None, **overrides: object) -> Any:
        return self.settings.override(temperature=temperature, **overrides)

    def stream(self, prompt: str, max_tokens: int, settings: Any = None, **_: Any):
        import numpy as np

        settings = settings or self.settings
        values = {
            "prompt": np.array([[prompt.encode()]], dtype=np.object_),
            "max_tokens": np.array([[max_tokens]], dtype=np.int32),
            "temperature": np.array([[settings.temperature]], dtype=np.float32),
            "top_p": np.array([[settings.top_p]], dtype=np.float32),
            "repetition_penalty": np.array([[settings.repetition_penalty]], dtype=np.float32),
            "seed": np.array([[settings.seed]], dtype=np.int32),
        }
        request = pb_utils.InferenceRequest(
            model_name=self.model,
            model_version=self.version,
            requested_output_names=["text"],
            inputs=[pb_utils.Tensor(name, value) for name, value in values.items()],
        )
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{self.model} version {self.version}: {response.error().message()}")
        text = pb_utils.get_output_tensor_by_name(response, "text").as_numpy().reshape(-1)[0]
        text = text.decode() if isinstance(text, bytes) else str(text)
        if text:
            yield text


class GenerationSlots:
    """At most `limit` generations run at once. A request that finds every slot taken is refused
    at once (UNAVAILABLE, "busy"), rather than queue without bound: each waiting generation would
    hold a thread and its prompt, and the client can retry."""

    def __init__(self, limit: int, model: str) -> None:
        self.limit = limit
        self.busy = (
            f"{model} is busy: {limit} generation(s) are running, the most it runs at once "
            "(serving_stream_max_concurrent); retry shortly"
        )
        self._free = threading.BoundedSemaphore(limit)

    def take(self) -> bool:
        """A slot for one generation; False when none is free (nothing waits)."""
        return self._free.acquire(blocking=False)

    def give_back(self) -> None:
        self._free.release()


def generation_slots(args: dict[str, str]) -> GenerationSlots:
    """The model configuration's cap on concurrent generations."""
    config = json.loads(args["model_config"])
    value = (config.get("parameters", {}).get(STREAM_GENERATIONS_PARAMETER) or {}).get(
        "string_value"
    )
    limit = int(value) if value else Settings.model_fields["serving_stream_max_concurrent"].default
    return GenerationSlots(limit, config["name"])
