"""Triton Python backend `twin_llm_stream`: the same model as `twin_llm`, decoupled (streaming).

Copied as `<version>/model.py`. Each request gets one response per generated piece of text
(`text` BYTES), then an empty final response: `generate_stream` turns them into server-sent
events, gRPC `stream_infer` into a stream of responses. Validation and the fingerprint check are
those of `twin_llm`.
"""

import json
import threading
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from twin.serving.generation import load_version_generator
from twin.serving.validation import (
    InvalidRequest,
    RequestLimits,
    check_max_tokens,
    check_prompt_tokens,
    check_temperature,
    decode_text,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _first(request, name):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = tensor.as_numpy().reshape(-1)
    return values[0] if values.size else None


def _error(message):
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    error = (
        pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    )
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.limits = RequestLimits.from_parameters(config.get("parameters", {}))
        try:
            self.generator = load_version_generator(version_dir, args["model_version"])
        except ValueError as err:
            raise pb_utils.TritonModelException(str(err)) from None
        self.workers = []

    def _run(self, request):
        sender = request.get_response_sender()
        try:
            text = decode_text("prompt", _first(request, "prompt"), self.limits.max_prompt_bytes)
            limit = check_max_tokens(_first(request, "max_tokens"), self.limits)
            temperature = check_temperature(_first(request, "temperature"))
            count = self.generator.count_tokens(text)
            check_prompt_tokens(count, limit, self.limits, self.generator.max_context)
        except (InvalidRequest, ValueError, TypeError) as exc:
            sender.send(_error(str(exc)), flags=FINAL)
            return
        try:
            for piece in self.generator.stream(text, limit, temperature):
                out = pb_utils.Tensor("text", np.array([piece.encode()], dtype=np.object_))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=FINAL)
        except Exception as exc:  # the stream ends with the error instead of hanging
            sender.send(_error(f"generation failed: {exc}"), flags=FINAL)

    def execute(self, requests):
        # Each request streams from its own thread, so execute returns at once (decoupled mode).
        self.workers = [w for w in self.workers if w.is_alive()]
        for request in requests:
            worker = threading.Thread(target=self._run, args=(request,), daemon=True)
            worker.start()
            self.workers.append(worker)
        return None

    def finalize(self):
        for worker in self.workers:
            worker.join(timeout=30)
