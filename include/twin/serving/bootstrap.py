"""Put a version on Triton from a fresh stack: pick it in MLflow (or register a base model when the
registry is still empty, for the demo), then load twin_llm, twin_llm_stream and twin_rag."""

from __future__ import annotations

from pathlib import Path

from twin.domain.models import CHAMPION, VersionTag, tokenizer_fingerprint
from twin.settings import Settings


def register_folder(settings: Settings, folder: Path, *, base_model: str | None = None) -> int:
    """Log a Hugging Face folder with the transformers flavor (explicit pip requirements) and
    register it as a new version of `settings.registered_model`, tagged with its tokenizer
    fingerprint (and `base_model`). Returns the version number."""
    import mlflow
    import mlflow.transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.store.tracking import tracking_client

    uri = settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with mlflow.start_run(run_name=f"register {base_model or folder.name}"):
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=["transformers", "torch", "safetensors"],
        )
    registered = mlflow.register_model(info.model_uri, settings.registered_model)
    client = tracking_client(settings)
    tags = {VersionTag.TOKENIZER_FINGERPRINT: tokenizer_fingerprint(tokenizer)}
    if base_model:
        tags[VersionTag.BASE_MODEL] = base_model
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, registered.version, key, value)
    return int(registered.version)


def pick_version(settings: Settings, base_model: str | None = None) -> int:
    """The `@champion` version, else the newest registered one, else (with `base_model`) a new
    version registered from that base model; a clear error otherwise."""
    from mlflow.exceptions import MlflowException

    from twin.store.base_models import resolve_base_model
    from twin.store.tracking import tracking_client

    client = tracking_client(settings)
    name = settings.registered_model
    try:
        return int(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        pass
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if versions:
        return max(int(v.version) for v in versions)
    if not base_model:
        raise RuntimeError(
            f"no version of {name} is registered: run the twin_training DAG, or pass "
            "--base-model smollm2-135m to serve the packaged base model"
        )
    cache = settings.models_dir()
    folder = resolve_base_model(base_model, Path(cache)).path
    return register_folder(settings, folder, base_model=base_model)


def serve_version(settings: Settings, version: int | None, *, base_model: str | None = None) -> int:
    """Serve `version` (or `pick_version`'s) as twin_llm + twin_llm_stream, make it twin_rag's
    default when none is set or when it was asked for, and (re)load twin_rag. Returns it."""
    from twin.serving.repository import load_rag, load_versions, read_routing, set_default_version

    chosen = int(version) if version else pick_version(settings, base_model)
    load_versions(settings, [chosen])
    if version or read_routing(settings).get("champion") is None:
        set_default_version(settings, chosen)
    load_rag(settings)
    return chosen
