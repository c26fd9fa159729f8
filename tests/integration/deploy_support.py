"""Registered test versions for the deployment tests: a tiny Llama logged with the transformers
flavor into the real MLflow of the test stack, registered under a fresh model name."""

from __future__ import annotations

import uuid
from pathlib import Path

from twin.domain.models import VersionTag
from twin.settings import Settings

PIP = ["transformers", "torch", "safetensors", "tokenizers"]


def tiny_llama_folder(cache_dir: Path) -> Path:
    from twin.store.base_models import TINY_LLAMA, resolve_base_model

    return resolve_base_model(TINY_LLAMA, cache_dir).path


def register_versions(
    settings: Settings, folder: Path, name: str, tags: list[dict[str, str]]
) -> list[str]:
    """Log the tiny model once and register one version per entry of `tags` (its tags)."""
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.store.tracking import tracking_client

    uri = settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(f"{name}-experiment")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with mlflow.start_run():
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=PIP,
        )
    client = tracking_client(settings)
    client.create_registered_model(name)
    versions = []
    for version_tags in tags:
        mv = client.create_model_version(
            name, info.model_uri, run_id=info.run_id, model_id=info.model_id, tags=version_tags
        )
        versions.append(str(mv.version))
    return versions


def passed(**extra: str) -> dict[str, str]:
    return {VersionTag.EVALUATION_PASSED: "true", VersionTag.REVIEW: "pending", **extra}


def fresh_name() -> str:
    return f"twin-llm-{uuid.uuid4().hex[:8]}"


def record_dataset_version(settings: Settings, author: str) -> str:
    """A dataset version of `author` in `ml.dataset_versions` (no samples): the lineage a
    registered version's `dataset_version` tag points at, which names its author."""
    from datetime import UTC, datetime

    from twin.domain.samples import DatasetVersion, content_digest
    from twin.store.datasets import ensure_ml_schema, write_dataset_version

    ensure_ml_schema(settings.require("warehouse_dsn"))
    version = content_digest(["deploy-test-dataset", author, uuid.uuid4().hex])
    write_dataset_version(
        settings,
        DatasetVersion(version=version, author=author, created_at=datetime.now(UTC)),
        [],
        [],
    )
    return version
