"""Triton Python backend `twin_llm_stream`: the same model as `twin_llm`, decoupled (streaming).

Copied as `<version>/model.py`. Each request gets one response per generated piece of text
(`text` BYTES), then an empty final response: `generate_stream` turns them into server-sent
events, gRPC `stream_infer` into a stream of responses. At most `max_concurrent_generations`
(the setting `serving_stream_max_concurrent`) generations run at once, each in its own thread; a
request beyond them is refused at once with an UNAVAILABLE "busy" error. Validation and the
fingerprint check are
those of `twin_llm`, and so are the generation settings (the version's, with the request's
overrides).
"""

import threading

import numpy as np
import triton_python_backend_utils as pb_utils

from twin.serving.backend import error_response, first_value, generation_slots, load_llm
from twin.serving.validation import (
    InvalidRequest,
    check_generation,
    check_max_tokens,
    check_prompt_tokens,
    decode_text,
)

OVERRIDES = ("temperature", "top_p", "repetition_penalty", "seed")

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def initialize(self, args):
        self.limits, self.generator = load_llm(args)
        self.slots = generation_slots(args)
        self.workers = []

    def _run_in_slot(self, request):
        try:
            self._run(request)
        finally:
            self.slots.give_back()

    def _run(self, request):
        sender = request.get_response_sender()
        try:
            text = decode_text(
                "prompt", first_value(request, "prompt"), self.limits.max_prompt_bytes
            )
            limit = check_max_tokens(first_value(request, "max_tokens"), self.limits)
            settings = check_generation(
                self.generator, **{name: first_value(request, name) for name in OVERRIDES}
            )
            count = self.generator.count_tokens(text)
            check_prompt_tokens(count, limit, self.limits, self.generator.max_context)
        except (InvalidRequest, ValueError, TypeError) as exc:
            sender.send(error_response(str(exc)), flags=FINAL)
            return
        try:
            for piece in self.generator.stream(text, limit, settings=settings):
                out = pb_utils.Tensor("text", np.array([piece.encode()], dtype=np.object_))
                sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            sender.send(flags=FINAL)
        except Exception as exc:  # the stream ends with the error instead of hanging
            sender.send(error_response(f"generation failed: {exc}"), flags=FINAL)

    def execute(self, requests):
        # Each request streams from its own thread, so execute returns at once (decoupled mode);
        # the slots cap how many run.
        self.workers = [w for w in self.workers if w.is_alive()]
        for request in requests:
            if not self.slots.take():
                busy = error_response(self.slots.busy, invalid=False)
                request.get_response_sender().send(busy, flags=FINAL)
                continue
            worker = threading.Thread(target=self._run_in_slot, args=(request,), daemon=True)
            worker.start()
            self.workers.append(worker)
        return None

    def finalize(self):
        for worker in self.workers:
            worker.join(timeout=30)
