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

from twin.serving.configs import STREAM_GENERATIONS_PARAMETER
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
    """The request limits of the model's configuration and its version's generator; a version
    whose tokenizer does not match its record refuses to load (TritonModelException)."""
    config = json.loads(args["model_config"])
    version_dir = Path(args["model_repository"]) / args["model_version"]
    limits = RequestLimits.from_parameters(config.get("parameters", {}))
    try:
        generator = load_version_generator(version_dir, args["model_version"])
    except ValueError as err:
        raise pb_utils.TritonModelException(str(err)) from None
    return limits, generator


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
