"""Generate the five-model TensorRT-LLM repository (preprocessing → tensorrt_llm → postprocessing,
the `ensemble` of the three, and `tensorrt_llm_bls`) for a registered version.

The output folder is meant to be copied into the GPU Triton's model repository (mounted at
`mount`, `/models` in `docker/docker-compose.yml`):

    preprocessing/config.pbtxt, preprocessing/1/        tokenizer (model.py: NVIDIA's)
    tensorrt_llm/config.pbtxt, tensorrt_llm/1/          the engine, in-flight batching
    postprocessing/config.pbtxt, postprocessing/1/      detokenizer (model.py: NVIDIA's)
    ensemble/config.pbtxt, ensemble/1/                  text in, text out
    tensorrt_llm_bls/config.pbtxt, tensorrt_llm_bls/1/  what twin_rag calls (backend_names)
    trtllm_assets/v<N>/hf/                              merged weights + tokenizer of version N
    trtllm_assets/v<N>/build.json                       what build_engine.sh reads

`docker/trtllm/build_engine.sh` converts the checkpoint, runs `trtllm-build` into
`trtllm_assets/v<N>/engine/` and copies NVIDIA's model.py files into the Python models.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

from twin.settings import PROJECT_ROOT, Settings

TEMPLATES = Path(__file__).parent / "templates"
BUILD_SCRIPT = PROJECT_ROOT / "docker" / "trtllm" / "build_engine.sh"
TRTLLM_MODELS = ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble", "tensorrt_llm_bls")
# Hugging Face architectures -> the TensorRT-LLM example folder whose convert_checkpoint.py reads it
CONVERTERS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen",
}


@dataclass(frozen=True)
class TrtllmBuild:
    """The engine build's parameters (written to build.json)."""

    version: int
    architecture: str
    converter: str
    dtype: str = "bfloat16"
    max_batch_size: int = 64
    max_input_len: int = 2048
    max_seq_len: int = 2560
    mount: str = "/models"


def _fill(name: str, values: dict[str, object]) -> str:
    text = Template((TEMPLATES / f"{name}.pbtxt").read_text()).substitute(values)
    left = re.findall(r"\$\{?\w+", text)
    if left:
        raise ValueError(f"{name}.pbtxt has unfilled placeholders: {left}")
    return text


def build_trtllm_repository(
    settings: Settings,
    version: int,
    out: Path | None = None,
    *,
    decoupled: bool = True,
    max_batch_size: int = 64,
    mount: str = "/models",
) -> Path:
    """Write the repository for `version` under `out` (default `<home>/trtllm/v<version>`), with
    the version's weights materialised first (`twin.serving.repository.materialise_version`).
    Idempotent: files are rewritten with the same content. Returns `out`."""
    from twin.serving.repository import materialise_version

    hf = materialise_version(settings, version) / "hf"
    config = json.loads((hf / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in CONVERTERS:
        raise ValueError(
            f"version {version} is a {architecture}: no TensorRT-LLM converter is mapped for it "
            f"(known: {', '.join(CONVERTERS)})"
        )
    out = Path(out or settings.home / "trtllm" / f"v{version}")
    assets = out / "trtllm_assets" / f"v{version}"
    if (assets / "hf").exists():
        shutil.rmtree(assets / "hf")
    shutil.copytree(hf, assets / "hf", symlinks=False)
    context = int(config.get("max_position_embeddings", 2048))
    build = TrtllmBuild(
        version=int(version),
        architecture=architecture,
        converter=CONVERTERS[architecture],
        max_batch_size=max_batch_size,
        max_input_len=max(16, context - settings.serving_max_new_tokens),
        max_seq_len=context,
        mount=mount,
    )
    (assets / "build.json").write_text(json.dumps(asdict(build), indent=2))
    base = f"{mount.rstrip('/')}/trtllm_assets/v{version}"
    values = {
        "max_batch_size": max_batch_size,
        "decoupled": "true" if decoupled else "false",
        "queue_delay_us": settings.serving_batch_delay_us,
        "tokenizer_dir": f"{base}/hf",
        "engine_dir": f"{base}/engine",
        "kv_cache_fraction": "0.9",
        "preprocessing_instances": 2,
        "postprocessing_instances": 2,
        "bls_instances": 4,
    }
    for name in TRTLLM_MODELS:
        (out / name / "1").mkdir(parents=True, exist_ok=True)
        (out / name / "config.pbtxt").write_text(_fill(name, values))
    if BUILD_SCRIPT.exists():
        shutil.copy2(BUILD_SCRIPT, out / BUILD_SCRIPT.name)
    return out
