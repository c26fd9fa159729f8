"""TensorRT-LLM for GPUs: the inflight_batcher_llm repository of a registered version, from our
templates (`templates/*.pbtxt`), and the engine build that runs in NVIDIA's Triton image
(`docker/trtllm/build_engine.sh`). Nothing here needs a GPU; the engine build does."""

from twin.serving.trtllm.repository import TRTLLM_MODELS, TrtllmBuild, build_trtllm_repository

__all__ = ["TRTLLM_MODELS", "TrtllmBuild", "build_trtllm_repository"]
