"""TensorRT-LLM for GPUs: a registered version's inflight_batcher_llm pipeline from our
templates (`templates/*.pbtxt`), the engine build that runs in NVIDIA's Triton image
(`docker/trtllm/build_engine.sh`), and a CPU stand-in for the BLS. Nothing here needs a GPU; the
engine build does."""

from twin.serving.trtllm.repository import (
    TRTLLM_MODELS,
    TrtllmBuild,
    build_trtllm_repository,
    install_standin,
    installed_pipeline,
    pipeline_names,
)

__all__ = [
    "TRTLLM_MODELS",
    "TrtllmBuild",
    "build_trtllm_repository",
    "install_standin",
    "installed_pipeline",
    "pipeline_names",
]
