"""What the Triton Python-backend models (`templates/*.py`) share: reading inputs, answering
with a Triton error, and loading a registered version once per model instance.

Imported only inside Triton's Python backend, where `triton_python_backend_utils` exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import triton_python_backend_utils as pb_utils

from twin.serving.generation import load_version_generator
from twin.serving.validation import RequestLimits


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
