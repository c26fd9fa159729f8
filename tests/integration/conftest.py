"""Fixtures shared by the integration modules, defined once (a fixture imported into several
modules would be one instance per module, even at session scope)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import scratch_home
from tests.integration.test_serving import register_version
from twin.serving.repository import load_versions, write_llm_configs
from twin.settings import Settings
from twin.stack import Stack


def clear_served_llm(settings: Settings) -> None:
    """Unload twin_rag, twin_llm_stream and twin_llm from the session's Triton, empty their
    served set and forget twin_rag's champion and shadow: what an earlier module deployed there
    (another registered model's versions, with the same numbers) neither answers nor blocks a
    version of this module's model."""
    from twin.serving.client import http_client
    from twin.serving.configs import RAG_MODEL
    from twin.serving.repository import ROUTING_FILE, repository_path

    client = http_client(settings)
    try:
        for model in ("twin_rag", "twin_llm_stream", "twin_llm"):
            client.unload_model(model)
    finally:
        client.close()
    write_llm_configs(settings, [])
    (repository_path(settings) / RAG_MODEL / ROUTING_FILE).unlink(missing_ok=True)


def printed_sources(output: str) -> str:
    """The sources block `twin ask` prints after its answer, whitespace folded (rich wraps it)."""
    assert "sources" in output, output
    return " ".join(output.split("sources", 1)[1].split())


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from twin.store.base_models import resolve_base_model

    return resolve_base_model("tiny-llama", tmp_path_factory.mktemp("models")).path


@pytest.fixture(scope="session")
def served_llm(stack_settings: Settings, tiny_model_dir: Path) -> Iterator[tuple[Settings, int]]:
    """A registered tiny version, materialised and loaded as twin_llm and twin_llm_stream: the
    only version they serve (what earlier modules left on the session's Triton is unloaded, so a
    request that names no version reaches this one)."""
    settings = stack_settings.model_copy(
        update={"registered_model": f"twin-llm-test-{uuid.uuid4().hex[:6]}"}
    )
    clear_served_llm(settings)
    version = register_version(settings, tiny_model_dir)
    load_versions(settings, [version])
    yield settings, version


@pytest.fixture(scope="session")
def s3_stack() -> Iterator[Stack]:
    """A stack of its own running the S3 server (moto), its bucket created, and a Triton that reads
    its model repository there; stopped and removed when the session ends."""
    home = scratch_home("twin-s3-")
    stack = Stack(home, ("s3", "triton"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
