"""`twin serve up` then `twin ask`, as `make demo` runs them: an empty registry, a base model
registered as the first version, twin_rag answering from the sample author's index."""

from __future__ import annotations

import uuid

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import printed_sources
from tests.integration.test_retrieval import chunk_store  # noqa: F401 - module fixture
from twin.cli import app

pytestmark = pytest.mark.integration


def test_serve_up_registers_a_base_model_then_ask_answers_with_sources(
    chunk_store,  # noqa: F811
    served_llm,
    tmp_path,
) -> None:
    from twin.serving.client import http_client
    from twin.serving.repository import load_versions

    # the session's twin_llm (another registered model) steps aside, and comes back afterwards
    served_settings, served_version = served_llm
    client = http_client(served_settings)
    for model in ("twin_rag", "twin_llm_stream", "twin_llm"):
        client.unload_model(model)
    try:
        _serve_up_then_ask(chunk_store, tmp_path)
    finally:
        for model in ("twin_rag", "twin_llm_stream", "twin_llm"):
            client.unload_model(model)
        load_versions(served_settings, [served_version])


def _serve_up_then_ask(chunk_store, tmp_path) -> None:  # noqa: F811
    from twin.serving.repository import served_versions

    name = f"twin-llm-cli-{uuid.uuid4().hex[:6]}"
    env = {
        "WAREHOUSE_DSN": chunk_store.dsn,
        "REGISTERED_MODEL": name,
        "TWIN_MODEL_CACHE": str(tmp_path),
        "SERVING_CONTEXT_TOKENS": "300",
        "SERVING_DEFAULT_MAX_TOKENS": "16",
        "SERVING_RAG_INSTANCES": "1",
    }
    runner = CliRunner()
    refused = runner.invoke(app, ["serve", "up"], env=env)
    assert refused.exit_code == 1
    assert f"no version of {name} is registered" in refused.output

    up = runner.invoke(app, ["serve", "up", "--base-model", "tiny-llama"], env=env)
    assert up.exit_code == 0, up.output
    version = int(up.output.split("twin_llm v")[1].split()[0])
    assert version in served_versions(
        chunk_store.settings.model_copy(update={"registered_model": name})
    )

    for protocol in ("http", "grpc"):
        asked = runner.invoke(
            app, ["ask", "What is the Tuesday test?", "--protocol", protocol], env=env
        )
        assert asked.exit_code == 0, asked.output
        sources = printed_sources(asked.output)
        assert "[1] The Tuesday test (linkedin)" in sources

    status = runner.invoke(app, ["serve", "status"], env=env)
    assert "twin_rag: READY" in status.output and "twin_llm: READY" in status.output
