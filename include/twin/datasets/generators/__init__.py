"""Instruction generators behind one interface: offline (default), local SmolLM2, endpoint."""

from __future__ import annotations

from typing import Any

from twin.datasets.generators.base import (
    GENERATOR_NAMES,
    AnswerPrompt,
    Generated,
    InstructionGenerator,
    SectionPrompt,
    Usage,
    config_digest,
    generator_label,
)
from twin.settings import Settings

__all__ = [
    "GENERATOR_NAMES",
    "AnswerPrompt",
    "Generated",
    "InstructionGenerator",
    "SectionPrompt",
    "Usage",
    "build_generator",
    "config_digest",
    "generator_label",
]

LOCAL_MODEL = "smollm2-135m"


def build_generator(name: str, settings: Settings, *, embedder: Any = None) -> InstructionGenerator:
    """The generator called `name` ('offline', 'smollm2' or 'endpoint'), configured from
    settings; a clear error for an unknown name or a missing endpoint URL."""
    if name == "offline":
        from twin.datasets.generators.offline import OfflineGenerator

        if embedder is None:
            from twin.store.embeddings import Embedder

            embedder = Embedder.from_settings(settings)
        return OfflineGenerator(embedder)
    if name == "smollm2":
        from twin.datasets.generators.local import LocalModelGenerator
        from twin.store.base_models import resolve_base_model

        cache = settings.models_dir()
        folder = resolve_base_model(LOCAL_MODEL, cache)
        return LocalModelGenerator(
            folder.path,
            LOCAL_MODEL,
            batch_size=settings.generator_batch_size,
            threads=settings.generator_threads,
        )
    if name == "endpoint":
        from twin.datasets.generators.endpoint import EndpointGenerator

        if not settings.generator_url:
            raise ValueError(
                "generator 'endpoint' needs TWIN_GENERATOR_URL (an OpenAI-compatible base URL)"
            )
        return EndpointGenerator(
            settings.generator_url,
            settings.generator_model,
            settings.generator_api_key or _connection_key(),
            batch_size=settings.generator_batch_size,
            timeout_s=settings.generator_timeout_s,
            max_retries=settings.generator_max_retries,
        )
    raise ValueError(f"generator {name!r} is not one of {', '.join(GENERATOR_NAMES)}")


def _connection_key() -> str | None:
    """The password of the Airflow connection `twin_generator`, inside Airflow."""
    import sys

    if "airflow" not in sys.modules:
        return None
    try:
        from airflow.sdk import Connection

        return Connection.get("twin_generator").password
    except Exception:  # no such connection, or not in a task: run without a key
        return None
