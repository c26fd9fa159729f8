"""Triton Python backend `twin_rag`: retrieval in pgvector, then a BLS call to the LLM backend
(`twin_llm`, or the version's TensorRT-LLM `tensorrt_llm_bls_v<N>`).

Copied as `1/model.py` by `twin.serving.repository.install_rag`. Inputs: `query` BYTES, optional
`author` BYTES, `model_version` INT32 (default: the champion in `routing.json`), `max_tokens`
INT32 and `prompt_only` BOOL (retrieve and build the prompt, do not generate). Outputs: `answer`
BYTES, `sources` BYTES (JSON list) and `meta` BYTES (JSON: grounded,
model version, token counts, per-step latency). The work is `twin.serving.rag_service.RagService`;
the settings it runs with are `settings.json` beside this file.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from twin.domain.devices import use_cpu_threads
from twin.serving.backend import error_response, first_value
from twin.serving.backend_names import llm_tensors
from twin.serving.rag_service import RagService, RetrievalUnavailable
from twin.serving.validation import InvalidRequest
from twin.settings import Settings


class TritonPythonModel:
    def initialize(self, args):
        here = Path(args["model_repository"]) / args["model_version"]
        settings = Settings(**json.loads((here / "settings.json").read_text()))
        use_cpu_threads(settings.serving_cpu_threads)
        self.names = llm_tensors(settings.serving_llm_backend)
        self.service = RagService(settings, self._generate)
        self.service.warm_up()

    def _generate(self, version, prompt, max_tokens):
        """BLS call to the LLM that serves `version` (Python backend or the version's TensorRT-LLM
        pipeline, names mapped); a decoupled model's responses are gathered. Token counts are
        None when the backend does not report them."""
        n = self.names
        batch = (1, 1) if n.batched else (1,)
        inputs = [
            pb_utils.Tensor(n.prompt, np.array([prompt.encode()], dtype=np.object_).reshape(batch)),
            pb_utils.Tensor(n.max_tokens, np.array([max_tokens], dtype=np.int32).reshape(batch)),
        ]
        if n.stream:
            inputs.append(pb_utils.Tensor(n.stream, np.array([False]).reshape(batch)))
        model = n.model_name(version)
        request = pb_utils.InferenceRequest(
            model_name=model,
            model_version=n.triton_version(version),
            requested_output_names=[n.text, *n.counts],
            inputs=inputs,
        )
        responses = request.exec(decoupled=True) if n.decoupled else [request.exec()]
        pieces, counts = [], [None, None]
        for response in responses:
            if response.has_error():
                raise RuntimeError(f"{model} (version {version}): {response.error().message()}")
            tensor = pb_utils.get_output_tensor_by_name(response, n.text)
            if tensor is None:  # the empty final response of a decoupled model
                continue
            text = tensor.as_numpy().reshape(-1)[0]
            pieces.append(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))
            for i, name in enumerate(n.counts):
                value = pb_utils.get_output_tensor_by_name(response, name).as_numpy()
                counts[i] = int(value.reshape(-1)[0])
        return "".join(pieces), counts[0], counts[1]

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                version = first_value(request, "model_version")
                max_tokens = first_value(request, "max_tokens")
                result = self.service.answer(
                    first_value(request, "query"),
                    first_value(request, "author"),
                    None if version is None else int(version),
                    None if max_tokens is None else int(max_tokens),
                    prompt_only=bool(first_value(request, "prompt_only")),
                )
            except InvalidRequest as exc:
                responses.append(error_response(str(exc), invalid=True))
                continue
            except RetrievalUnavailable as exc:
                responses.append(error_response(str(exc), invalid=False))
                continue
            except Exception as exc:
                responses.append(
                    error_response(f"twin_rag failed: {type(exc).__name__}: {exc}", False)
                )
                continue
            outputs = {
                "answer": result.answer,
                "sources": json.dumps(result.sources, ensure_ascii=False),
                "meta": json.dumps(result.meta, ensure_ascii=False),
            }
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(k, np.array([v.encode()], dtype=np.object_))
                        for k, v in outputs.items()
                    ]
                )
            )
        return responses

    def finalize(self):
        self.service.close()
