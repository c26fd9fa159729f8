"""Generate a registered version's TensorRT-LLM pipeline (preprocessing → tensorrt_llm →
postprocessing, the `ensemble` of the three, and `tensorrt_llm_bls`) into the model repository,
beside twin_rag. Every model carries the version's suffix, so each registered version has its own
engine and promotion or rollback (twin_rag's routing) switches the engine the clients use:

    preprocessing_v<N>/config.pbtxt, 1/        tokenizer (model.py: NVIDIA's)
    tensorrt_llm_v<N>/config.pbtxt, 1/         the engine, in-flight batching
    postprocessing_v<N>/config.pbtxt, 1/       detokenizer (model.py: NVIDIA's)
    ensemble_v<N>/config.pbtxt, 1/             text in, text out
    tensorrt_llm_bls_v<N>/config.pbtxt, 1/     what twin_rag calls (backend_names)
    trtllm_assets/v<N>/hf/                     merged weights + tokenizer of version N
    trtllm_assets/v<N>/build.json              what build_engine.sh reads (model names included)

`docker/trtllm/build_engine.sh` converts the checkpoint, runs `trtllm-build` into
`trtllm_assets/v<N>/engine/` (skipped when the engine was built from the same weights: the
weights' content hash is in build.json), copies NVIDIA's model.py files into the Python models
and points them at the version's model names.

Without a GPU, `install_standin` writes `tensorrt_llm_bls_v<N>` alone as a stand-in: the BLS's
exact configuration (inputs, outputs, decoupled) run by the Python backend, generating with the
version's weights through transformers. twin_rag, the clients and the deployment checks call it
as they call the real pipeline.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

from twin.serving.backend_names import TRTLLM_PIPELINE, versioned_name
from twin.settings import PROJECT_ROOT, Settings

TEMPLATES = Path(__file__).parent / "templates"
BUILD_SCRIPT = PROJECT_ROOT / "docker" / "trtllm" / "build_engine.sh"
TRTLLM_MODELS = TRTLLM_PIPELINE
ASSETS = "trtllm_assets"
STANDIN_PARAMETER = "twin_standin_weights"
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
    weights_sha256: str = ""  # the engine is rebuilt only when the weights change
    dtype: str = "bfloat16"
    max_batch_size: int = 64
    max_input_len: int = 2048
    max_seq_len: int = 2560
    mount: str = "/models"
    models: dict[str, str] = field(default_factory=dict)  # NVIDIA's name -> this version's


def pipeline_names(version: int) -> dict[str, str]:
    """NVIDIA's model names -> the names of `version`'s pipeline."""
    return {model: versioned_name(model, version) for model in TRTLLM_MODELS}


def _fill(name: str, values: dict[str, object]) -> str:
    text = Template((TEMPLATES / f"{name}.pbtxt").read_text()).substitute(values)
    left = re.findall(r"\$\{?\w+", text)
    if left:
        raise ValueError(f"{name}.pbtxt has unfilled placeholders: {left}")
    return text


def weights_digest(folder: Path) -> str:
    """sha256 over the relative paths and contents of every file under `folder`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _copy_weights(settings: Settings, version: int, root: Path) -> tuple[Path, dict]:
    """The version's merged weights under `<root>/trtllm_assets/v<N>/hf` (materialised first),
    and their config.json; ValueError for an architecture no converter is mapped for."""
    from twin.serving.repository import materialise_version, repository_path

    hf = repository_path(settings) / materialise_version(settings, version) / "hf"
    config = json.loads((hf / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in CONVERTERS:
        raise ValueError(
            f"version {version} is a {architecture}: no TensorRT-LLM converter is mapped for it "
            f"(known: {', '.join(CONVERTERS)})"
        )
    assets = root / ASSETS / f"v{version}"
    if (assets / "hf").exists():
        shutil.rmtree(assets / "hf")
    shutil.copytree(hf, assets / "hf", symlinks=False)
    return assets, config


def _values(settings: Settings, version: int, base: str, decoupled: bool, batch: int) -> dict:
    return {
        **pipeline_names(version),
        "max_batch_size": batch,
        "decoupled": "true" if decoupled else "false",
        "queue_delay_us": settings.serving_batch_delay_us,
        "tokenizer_dir": f"{base}/hf",
        "engine_dir": f"{base}/engine",
        "kv_cache_fraction": "0.9",
        "preprocessing_instances": 2,
        "postprocessing_instances": 2,
        "bls_instances": 4,
    }


def build_trtllm_repository(
    settings: Settings,
    version: int,
    out: Path | None = None,
    *,
    decoupled: bool = True,
    max_batch_size: int = 64,
    mount: str = "/models",
) -> Path:
    """Write `version`'s pipeline under `out` (default: the serving model repository, where
    twin_rag calls it) with the version's weights; `mount` is where Triton sees `out`.
    Idempotent: files are rewritten with the same content. Returns `out`."""
    from twin.serving.repository import repository_path

    out = Path(out) if out else repository_path(settings)
    assets, config = _copy_weights(settings, version, out)
    context = int(config.get("max_position_embeddings", 2048))
    architecture = config["architectures"][0]
    build = TrtllmBuild(
        version=int(version),
        architecture=architecture,
        converter=CONVERTERS[architecture],
        weights_sha256=weights_digest(assets / "hf"),
        max_batch_size=max_batch_size,
        max_input_len=max(16, context - settings.serving_max_new_tokens),
        max_seq_len=context,
        mount=mount,
        models=pipeline_names(version),
    )
    (assets / "build.json").write_text(json.dumps(asdict(build), indent=2))
    base = f"{mount.rstrip('/')}/{ASSETS}/v{version}"
    values = _values(settings, version, base, decoupled, max_batch_size)
    for model, name in pipeline_names(version).items():
        (out / name / "1").mkdir(parents=True, exist_ok=True)
        (out / name / "config.pbtxt").write_text(_fill(model, values))
    if BUILD_SCRIPT.exists():
        shutil.copy2(BUILD_SCRIPT, out / BUILD_SCRIPT.name)
    return out


def install_standin(settings: Settings, version: int, *, max_batch_size: int = 8) -> Path:
    """Write `tensorrt_llm_bls_v<N>` into the serving repository as a stand-in for the engine
    (no GPU): the BLS's configuration, decoupled, with the stand-in's model.py generating from
    the version's weights. Returns its folder."""
    from twin.serving.repository import repository_path

    root = repository_path(settings)
    assets, _ = _copy_weights(settings, version, root)
    values = _values(settings, version, str(assets.parent), True, max_batch_size)
    values["bls_instances"] = 1
    name = versioned_name("tensorrt_llm_bls", version)
    folder = root / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    weights = json.dumps(str(assets / "hf"))
    config = _fill("tensorrt_llm_bls", values) + (
        f'parameters {{ key: "{STANDIN_PARAMETER}" value: {{ string_value: {weights} }} }}\n'
    )
    (folder / "config.pbtxt").write_text(config)
    shutil.copy2(TEMPLATES / "tensorrt_llm_bls_standin.py", folder / "1" / "model.py")
    return folder


def installed_pipeline(settings: Settings, version: int) -> list[str]:
    """The models of `version`'s pipeline present in the serving repository, in load order (the
    BLS last: it calls the others); empty when none is."""
    from twin.serving.repository import repository_path

    root = repository_path(settings)
    names = pipeline_names(version)
    return [names[m] for m in TRTLLM_MODELS if (root / names[m] / "config.pbtxt").exists()]
