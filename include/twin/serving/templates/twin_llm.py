"""Triton Python backend `twin_llm`: a merged causal LM, requests padded together.

Copied as `<version>/model.py` by `twin.serving.repository`. Inputs: `prompt` BYTES, optional
`max_tokens` INT32, and overrides of the version's generation settings `temperature`, `top_p`,
`repetition_penalty` FP32 and `seed` INT32 (each within its bounds); outputs `text` BYTES,
`prompt_tokens` and `completion_tokens` INT32. The dynamic batcher hands `execute` several
requests; valid ones are generated in one padded batch per generation setting, invalid ones
answered with a Triton error naming the input. The tokenizer's fingerprint must match the
version's record or the load fails.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

from twin.serving.backend import error_response, input_values, load_llm
from twin.serving.validation import (
    InvalidRequest,
    check_generation,
    check_max_tokens,
    check_prompt_tokens,
    decode_text,
)

OVERRIDES = ("temperature", "top_p", "repetition_penalty", "seed")


class TritonPythonModel:
    def initialize(self, args):
        self.limits, self.generator = load_llm(args)
        self.version = int(args["model_version"])

    def _parse(self, request):
        """[(prompt, max_tokens, generation settings)] for each row of one request."""
        prompts = input_values(request, "prompt")
        if prompts is None or prompts.size == 0:
            raise InvalidRequest("input 'prompt' is required")
        max_tokens = input_values(request, "max_tokens")
        overrides = {name: input_values(request, name) for name in OVERRIDES}
        rows = []
        for i, raw in enumerate(prompts):
            text = decode_text("prompt", raw, self.limits.max_prompt_bytes)
            limit = check_max_tokens(
                None if max_tokens is None else max_tokens[min(i, max_tokens.size - 1)], self.limits
            )
            settings = check_generation(
                self.generator,
                **{
                    name: None if values is None else values[min(i, values.size - 1)]
                    for name, values in overrides.items()
                },
            )
            count = self.generator.count_tokens(text)
            check_prompt_tokens(count, limit, self.limits, self.generator.max_context)
            rows.append((text, limit, settings))
        return rows

    def execute(self, requests):
        responses = [None] * len(requests)
        # generation settings but the seed -> [(request index, row index, prompt, max_tokens,
        # seed)]: every row samples with its own seed, so rows differing in it share a batch
        work = {}
        parsed = {}
        for index, request in enumerate(requests):
            try:
                rows = self._parse(request)
            except (InvalidRequest, ValueError, TypeError) as exc:
                responses[index] = error_response(str(exc))
                continue
            parsed[index] = len(rows)
            for row, (text, limit, settings) in enumerate(rows):
                key = settings.model_copy(update={"seed": 0})
                work.setdefault(key, []).append((index, row, text, limit, settings.seed))
        outputs = {index: [None] * n for index, n in parsed.items()}
        for settings, items in work.items():
            try:
                done = self.generator.generate(
                    [i[2] for i in items],
                    [i[3] for i in items],
                    settings=settings,
                    seeds=[i[4] for i in items],
                )
            except Exception as exc:  # one failing batch answers its own requests only
                for index, *_ in items:
                    responses[index] = error_response(f"generation failed: {exc}")
                continue
            for (index, row, *_), generation in zip(items, done, strict=True):
                outputs[index][row] = generation
        for index, generations in outputs.items():
            if responses[index] is not None:
                continue
            n = len(generations)
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(
                        "text",
                        np.array([g.text.encode() for g in generations], dtype=np.object_).reshape(
                            n, 1
                        ),
                    ),
                    pb_utils.Tensor(
                        "prompt_tokens",
                        np.array([g.prompt_tokens for g in generations], dtype=np.int32).reshape(
                            n, 1
                        ),
                    ),
                    pb_utils.Tensor(
                        "completion_tokens",
                        np.array(
                            [g.completion_tokens for g in generations], dtype=np.int32
                        ).reshape(n, 1),
                    ),
                ]
            )
        return responses
