"""TritonHook on the `triton_default` connection (from the stack's AIRFLOW_CONN_TRITON_DEFAULT)
against the stack's Triton: readiness, inference, unload and load."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.integration.test_serving import PROMPT
from twin.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(served_llm):
    sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    try:
        from triton_hook import TritonHook
    finally:
        sys.path.remove(str(PROJECT_ROOT / "plugins"))
    return TritonHook()


def test_hook_reads_the_connection_and_infers(hook, served_llm) -> None:
    settings, version = served_llm
    assert hook.settings.triton_http_url == settings.triton_http_url
    assert hook.settings.triton_grpc_url == settings.triton_grpc_url
    assert hook.is_ready() and hook.is_ready("twin_llm", version)
    outputs = hook.infer(
        "twin_llm",
        {
            "prompt": np.array([[PROMPT.encode()]], dtype=np.object_),
            "max_tokens": np.array([[4]], dtype=np.int32),
        },
        version=version,
    )
    assert set(outputs) == {"text", "prompt_tokens", "completion_tokens"}
    assert 1 <= int(outputs["completion_tokens"][0][0]) <= 4


def test_hook_unloads_and_loads_a_model(hook, served_llm) -> None:
    _, version = served_llm
    hook.unload("twin_llm_stream")
    assert not hook.is_ready("twin_llm_stream")
    hook.load("twin_llm_stream")
    hook.wait_ready("twin_llm_stream", timeout_s=120)
    assert hook.is_ready("twin_llm_stream", version)
    assert hook.is_ready("no_such_model") is False
