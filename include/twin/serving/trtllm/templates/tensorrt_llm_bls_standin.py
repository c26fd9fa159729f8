"""A CPU stand-in for `tensorrt_llm_bls_v<N>` (no GPU, no engine): the BLS's configuration, so the
same inputs, outputs and decoupled transaction policy, with the generation done by transformers
on the version's weights (the `twin_standin_weights` parameter) and its generation settings.

Copied as `1/model.py` by `twin.serving.trtllm.install_standin`. Inputs: `text_input` BYTES,
`max_tokens` INT32, optional `stream` BOOL, `temperature` and `top_p` FP32 (NVIDIA's other
optional inputs are accepted and ignored). Responses: `stream` false, one with the whole
`text_output`; `stream` true, one per generated piece; then an empty final response, as the real
BLS sends them.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from twin.serving.backend import error_response, first_value
from twin.serving.generation import Generator
from twin.serving.validation import (
    InvalidRequest,
    RequestLimits,
    check_generation,
    check_max_tokens,
    check_prompt_tokens,
    decode_text,
)

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
WEIGHTS = "twin_standin_weights"


def _response(text):
    out = pb_utils.Tensor("text_output", np.array([[text.encode()]], dtype=np.object_))
    return pb_utils.InferenceResponse(output_tensors=[out])


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = config.get("parameters", {})
        self.limits = RequestLimits.from_parameters(parameters)
        self.generator = Generator(parameters[WEIGHTS]["string_value"])

    def _parse(self, request):
        text = decode_text(
            "text_input", first_value(request, "text_input"), self.limits.max_prompt_bytes
        )
        limit = check_max_tokens(first_value(request, "max_tokens"), self.limits)
        settings = check_generation(
            self.generator,
            temperature=first_value(request, "temperature"),
            top_p=first_value(request, "top_p"),
        )
        check_prompt_tokens(
            self.generator.count_tokens(text), limit, self.limits, self.generator.max_context
        )
        return text, limit, settings, bool(first_value(request, "stream"))

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                text, limit, settings, stream = self._parse(request)
            except (InvalidRequest, ValueError, TypeError) as exc:
                sender.send(error_response(str(exc)), flags=FINAL)
                continue
            try:
                if stream:
                    for piece in self.generator.stream(text, limit, settings=settings):
                        sender.send(_response(piece))
                else:
                    done = self.generator.generate([text], [limit], settings=settings)[0]
                    sender.send(_response(done.text))
                sender.send(flags=FINAL)
            except Exception as exc:  # the stream ends with the error instead of hanging
                sender.send(error_response(f"generation failed: {exc}", False), flags=FINAL)
        return None
