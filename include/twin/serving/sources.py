"""Where served weights come from: a registered MLflow version, or a local Hugging Face folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from twin.domain.generation import GenerationSettings
from twin.domain.models import VersionTag, tokenizer_fingerprint
from twin.settings import Settings


class ModelSourceError(RuntimeError):
    """A model version that cannot be fetched or does not hold a usable model."""


@dataclass(frozen=True)
class SourceRecord:
    """What a materialised version was built from (written as `version.json`)."""

    registered_model: str
    version: int
    source: str  # models:/<name>/<version> or a folder
    run_id: str | None
    tokenizer_fingerprint: str
    fingerprint_origin: str  # "registry tag" or "computed at materialisation"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def save_components(model, tokenizer, out: Path) -> None:
    """Write a model and its tokenizer as a Hugging Face folder (safetensors)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def fetch_registered(settings: Settings, version: int, out: Path) -> SourceRecord:
    """Load `models:/<registered_model>/<version>` with the transformers flavor and save its merged
    model and tokenizer under `out`; the tokenizer fingerprint comes from the version's tag when
    present (so a tokenizer that drifted from the registered one is caught at load)."""
    import mlflow
    import mlflow.transformers
    from mlflow.exceptions import MlflowException

    from twin.store.tracking import tracking_client

    name = settings.registered_model
    uri = settings.require("mlflow_tracking_uri")
    client = tracking_client(settings)
    try:
        registered = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ModelSourceError(
            f"model version {name} v{version} not found in MLflow: {exc}"
        ) from None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        components = mlflow.transformers.load_model(
            f"models:/{name}/{version}", return_type="components"
        )
    except Exception as exc:
        raise ModelSourceError(
            f"{name} v{version} cannot be loaded with the transformers flavor: {exc}"
        ) from None
    model, tokenizer = components.get("model"), components.get("tokenizer")
    if model is None or tokenizer is None:
        raise ModelSourceError(f"{name} v{version} has no model or no tokenizer component")
    save_components(model, tokenizer, out)
    # a re-save keeps Hugging Face's generation keys only: the seed and stops come from the tags
    generation = GenerationSettings.from_tags(registered.tags or {})
    if generation is not None:
        generation.save(out)
    tag = (registered.tags or {}).get(VersionTag.TOKENIZER_FINGERPRINT)
    return SourceRecord(
        registered_model=name,
        version=int(version),
        source=f"models:/{name}/{version}",
        run_id=registered.run_id,
        tokenizer_fingerprint=tag or tokenizer_fingerprint(tokenizer),
        fingerprint_origin="registry tag" if tag else "computed at materialisation",
    )


def copy_local(folder: Path, version: int, out: Path, name: str) -> SourceRecord:
    """Copy a local Hugging Face folder (config.json, weights, tokenizer) as `version`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "config.json").exists():
        raise ModelSourceError(f"{folder} is not a Hugging Face model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    save_components(model, tokenizer, out)
    GenerationSettings.load(folder).save(out)  # the seed and stops a re-save drops
    return SourceRecord(
        registered_model=name,
        version=int(version),
        source=str(folder),
        run_id=None,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
        fingerprint_origin="computed at materialisation",
    )
