"""One interface over both LLM backends: the models and tensor names twin_rag uses for each.

twin_rag builds the same BLS request for the Python backend (`twin_llm`) and for TensorRT-LLM
(`tensorrt_llm_bls` of NVIDIA's inflight_batcher_llm repository); only names, shapes and the
transaction policy differ. The Python backend serves every registered version as a Triton version
of one model; TensorRT-LLM gets one pipeline per registered version (its own engine), each of its
models named with the version's suffix (`tensorrt_llm_bls_v3`, `tensorrt_llm_v3`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

# NVIDIA's inflight_batcher_llm models, in the order they are loaded (the BLS calls the others)
TRTLLM_PIPELINE = (
    "preprocessing",
    "tensorrt_llm",
    "postprocessing",
    "ensemble",
    "tensorrt_llm_bls",
)


def versioned_name(model: str, version: int) -> str:
    """The name of a per-version model: `tensorrt_llm_bls` of version 3 is `tensorrt_llm_bls_v3`."""
    return f"{model}_v{int(version)}"


@dataclass(frozen=True)
class LlmTensors:
    """Model and tensor names of an LLM backend, as twin_rag and the clients call it."""

    backend: str  # settings.serving_llm_backend
    model: str
    prompt: str
    max_tokens: str
    text: str
    counts: tuple[str, ...]  # (prompt_tokens, completion_tokens) when the backend reports them
    batched: bool  # inputs carry a batch dimension
    versioned: bool  # each registered version is a Triton version of the model
    decoupled: bool  # answers come as a stream of responses ending with a final flag
    stream: str | None = None  # the BOOL input that asks for pieces rather than one response
    stream_model: str | None = None  # a streaming model of its own (`text` pieces)

    def model_name(self, version: int) -> str:
        """The Triton model that serves registered `version`."""
        return self.model if self.versioned else versioned_name(self.model, version)

    def triton_version(self, version: int) -> int:
        """The Triton version to ask `model_name(version)` for (-1: its only one)."""
        return int(version) if self.versioned else -1


PYTHON = LlmTensors(
    backend="python",
    model="twin_llm",
    prompt="prompt",
    max_tokens="max_tokens",
    text="text",
    counts=("prompt_tokens", "completion_tokens"),
    batched=True,
    versioned=True,
    decoupled=False,
    stream_model="twin_llm_stream",
)
TENSORRT_LLM = LlmTensors(
    backend="tensorrtllm",
    model="tensorrt_llm_bls",
    prompt="text_input",
    max_tokens="max_tokens",
    text="text_output",
    counts=(),
    batched=True,
    versioned=False,
    decoupled=True,
    stream="stream",
)


def llm_tensors(backend: str) -> LlmTensors:
    """The names for `settings.serving_llm_backend` ("python" or "tensorrtllm")."""
    if backend == "python":
        return PYTHON
    if backend == "tensorrtllm":
        return TENSORRT_LLM
    raise ValueError(f"unknown LLM backend {backend!r}: use python or tensorrtllm")
