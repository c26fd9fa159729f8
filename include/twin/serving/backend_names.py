"""One interface over both LLM backends: the tensor names twin_rag uses for each.

twin_rag builds the same BLS request for the Python backend (`twin_llm`) and for TensorRT-LLM
(`tensorrt_llm_bls` of the inflight_batcher_llm repository); only names and shapes differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LlmTensors:
    """Model and tensor names of an LLM backend, as twin_rag calls it."""

    model: str
    prompt: str
    max_tokens: str
    text: str
    counts: tuple[str, ...]  # (prompt_tokens, completion_tokens) when the backend reports them
    batched: bool  # inputs carry a batch dimension
    versioned: bool  # each registered version is a Triton version of the model


PYTHON = LlmTensors(
    model="twin_llm",
    prompt="prompt",
    max_tokens="max_tokens",
    text="text",
    counts=("prompt_tokens", "completion_tokens"),
    batched=True,
    versioned=True,
)
TENSORRT_LLM = LlmTensors(
    model="tensorrt_llm_bls",
    prompt="text_input",
    max_tokens="max_tokens",
    text="text_output",
    counts=(),
    batched=True,
    versioned=False,
)


def llm_tensors(backend: str) -> LlmTensors:
    """The names for `settings.serving_llm_backend` ("python" or "tensorrtllm")."""
    if backend == "python":
        return PYTHON
    if backend == "tensorrtllm":
        return TENSORRT_LLM
    raise ValueError(f"unknown LLM backend {backend!r}: use python or tensorrtllm")
