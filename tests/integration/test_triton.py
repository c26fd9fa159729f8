"""Triton through the project's clients: load a Python-backend model, infer over HTTP and gRPC."""

import textwrap
import uuid

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from twin.serving.client import grpc_client, http_client
from twin.settings import Settings

pytestmark = pytest.mark.integration

CONFIG = """
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "text" data_type: TYPE_STRING dims: [ -1 ] }} ]
output [ {{ name: "shout" data_type: TYPE_STRING dims: [ -1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""

MODEL = textwrap.dedent("""
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                texts = pb_utils.get_input_tensor_by_name(request, "text").as_numpy()
                shouted = np.array([t.decode().upper().encode() + b"!" for t in texts],
                                   dtype=np.object_)
                out = pb_utils.Tensor("shout", shouted)
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            return responses
""")


@pytest.fixture
def shout_model(stack_settings: Settings):
    """A tiny Python-backend model written into the server's repository; removed afterwards."""
    repository = stack_settings.triton_model_repository
    if repository is None:
        pytest.fail("TRITON_MODEL_REPOSITORY is not set: the test writes its model there")
    name = f"probe_shout_{uuid.uuid4().hex[:6]}"
    (repository / name / "1").mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(CONFIG.format(name=name))
    (repository / name / "1" / "model.py").write_text(MODEL)
    yield name
    import shutil

    shutil.rmtree(repository / name, ignore_errors=True)


def test_load_infer_http_and_grpc_then_unload(stack_settings: Settings, shout_model: str) -> None:
    http = http_client(stack_settings)
    grpc = grpc_client(stack_settings)
    texts = np.array([b"ship the boring version first", b"hello"], dtype=np.object_)

    http.load_model(shout_model)
    assert http.is_model_ready(shout_model)

    http_in = triton_http.InferInput("text", [2], "BYTES")
    http_in.set_data_from_numpy(texts)
    via_http = http.infer(shout_model, [http_in]).as_numpy("shout").tolist()

    grpc_in = triton_grpc.InferInput("text", [2], "BYTES")
    grpc_in.set_data_from_numpy(texts)
    via_grpc = grpc.infer(shout_model, [grpc_in]).as_numpy("shout").tolist()

    index = {m["name"]: m for m in http.get_model_repository_index()}
    grpc.unload_model(shout_model)

    assert via_http == [b"SHIP THE BORING VERSION FIRST!", b"HELLO!"]
    assert via_grpc == via_http
    assert index[shout_model]["state"] == "READY"
    assert not http.is_model_ready(shout_model)
    http.close()
    grpc.close()
