"""Triton clients over HTTP and gRPC (tritonclient), built from settings, and the calls `twin ask`,
the shadow mirror and the tests make: twin_llm completions, twin_rag answers, streaming."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from twin.serving.backend_names import LlmTensors, llm_tensors
from twin.settings import TRITON_REPOSITORY_KEY_HEADER, Settings

T = TypeVar("T")
R = TypeVar("R")


def http_client(settings: Settings, *, timeout_s: float | None = None):
    """A `tritonclient.http` client for `TRITON_HTTP_URL` (or the `triton_default` connection)."""
    import tritonclient.http as triton_http

    url = urlsplit(settings.require("triton_http_url"))
    timeout = timeout_s or settings.service_timeout_s
    client = triton_http.InferenceServerClient(
        url.netloc, ssl=url.scheme == "https", connection_timeout=timeout, network_timeout=timeout
    )
    return _with_repository_key(client, settings, TRITON_REPOSITORY_KEY_HEADER)


def grpc_client(settings: Settings):
    """A `tritonclient.grpc` client for `TRITON_GRPC_URL` (`host:port`)."""
    import tritonclient.grpc as triton_grpc

    target = settings.require("triton_grpc_url")
    client = triton_grpc.InferenceServerClient(target.removeprefix("grpc://"))
    # Triton's gRPC endpoint reads restricted-protocol headers under this prefix.
    return _with_repository_key(
        client, settings, f"triton-grpc-protocol-{TRITON_REPOSITORY_KEY_HEADER}"
    )


def _with_repository_key(client, settings: Settings, header: str):
    """`client`, sending the platform's key that Triton's model-repository API (load, unload)
    asks for, when one is configured (`TRITON_REPOSITORY_KEY`)."""
    from tritonclient._plugin import InferenceServerClientPlugin

    key = settings.triton_repository_key

    class RepositoryKey(InferenceServerClientPlugin):
        def __call__(self, request) -> None:
            request.headers[header] = key

    if key:
        client.register_plugin(RepositoryKey())
    return client


def _inputs(module, values: dict[str, Any], batched: bool) -> list:
    """InferInputs for `values` (str → BYTES, int → INT32, float → FP32), skipping None."""
    inputs = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            array, dtype = np.array([value], dtype=bool), "BOOL"
        elif isinstance(value, str | bytes):
            array = np.array(
                [value.encode() if isinstance(value, str) else value], dtype=np.object_
            )
            dtype = "BYTES"
        elif not isinstance(value, int | float):
            raise TypeError(f"input {name!r} has an unsupported type {type(value).__name__}")
        elif isinstance(value, int):
            array, dtype = np.array([value], dtype=np.int32), "INT32"
        else:
            array, dtype = np.array([value], dtype=np.float32), "FP32"
        if batched:
            array = array.reshape(1, 1)
        item = module.InferInput(name, list(array.shape), dtype)
        item.set_data_from_numpy(array)
        inputs.append(item)
    return inputs


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def generate_text(
    settings: Settings,
    prompt: str | bytes,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    version: int | None = None,
    protocol: str = "http",
) -> dict[str, Any]:
    """One completion from the LLM backend that serves `version` (`serving_llm_backend`):
    {"text", "prompt_tokens", "completion_tokens"}; the counts are None when the backend does not
    report them (TensorRT-LLM). A decoupled backend is asked over a gRPC stream whatever
    `protocol` says (Triton answers a plain HTTP request to one with 501)."""
    names = llm_tensors(settings.serving_llm_backend)
    if names.decoupled:
        if version is None:
            raise ValueError(f"the {names.backend} backend serves each version apart: name one")
        pieces = _stream(settings, names, prompt, max_tokens, temperature, version, False)
        return {"text": "".join(pieces), "prompt_tokens": None, "completion_tokens": None}
    values = {names.prompt: prompt, names.max_tokens: max_tokens, "temperature": temperature}
    result = _infer(settings, names.model, values, version, protocol, batched=names.batched)
    counts = [int(result.as_numpy(name).reshape(-1)[0]) for name in names.counts]
    return {
        "text": _text(result.as_numpy(names.text).reshape(-1)[0]),
        "prompt_tokens": counts[0] if counts else None,
        "completion_tokens": counts[1] if counts else None,
    }


def timed_calls(
    call: Callable[[T], R], items: Sequence[T], workers: int
) -> list[tuple[R | Exception, float]]:
    """`call` on every item with up to `workers` in flight (Triton's dynamic batcher answers
    concurrent requests to one model in one batch), in the items' order: each result (or the
    exception it raised, so one failed request never loses the others) with its latency in ms."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(item: T) -> tuple[R | Exception, float]:
        clock = time.perf_counter()
        try:
            result: R | Exception = call(item)
        except Exception as err:
            result = err
        return result, round((time.perf_counter() - clock) * 1000, 2)

    if workers <= 1 or len(items) <= 1:
        return [timed(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(timed, items))


def ask(
    settings: Settings,
    query: str | bytes,
    *,
    author: str | None = None,
    version: int | None = None,
    max_tokens: int | None = None,
    protocol: str = "http",
    prompt_only: bool = False,
) -> dict[str, Any]:
    """One `twin_rag` answer: {"answer", "sources" (list), "meta" (dict)}; with `prompt_only`
    the answer is empty and meta holds the prompt (see `stream_answer`)."""
    values = {
        "query": query,
        "author": author,
        "model_version": version,
        "max_tokens": max_tokens,
        "prompt_only": True if prompt_only else None,
    }
    result = _infer(settings, "twin_rag", values, None, protocol, batched=False)
    return {
        "answer": _text(result.as_numpy("answer").reshape(-1)[0]),
        "sources": json.loads(_text(result.as_numpy("sources").reshape(-1)[0])),
        "meta": json.loads(_text(result.as_numpy("meta").reshape(-1)[0])),
    }


def _infer(settings, model, values, version, protocol, *, batched):
    if protocol not in ("http", "grpc"):
        raise ValueError(f"protocol must be http or grpc, not {protocol!r}")
    timeout = settings.serving_request_timeout_s
    if protocol == "http":
        import tritonclient.http as module

        client = http_client(settings, timeout_s=timeout)
        kwargs = {}
    else:
        import tritonclient.grpc as module

        client = grpc_client(settings)
        kwargs = {"client_timeout": timeout}
    try:
        return client.infer(
            model, _inputs(module, values, batched), model_version=str(version or ""), **kwargs
        )
    finally:
        client.close()


def stream_text(
    settings: Settings,
    prompt: str,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    version: int | None = None,
) -> Iterator[str]:
    """Pieces of a completion as they are generated, over a gRPC stream: from `twin_llm_stream`,
    or from the version's TensorRT-LLM BLS asked to stream."""
    names = llm_tensors(settings.serving_llm_backend)
    if not names.versioned and version is None:
        raise ValueError(f"the {names.backend} backend serves each version apart: name one")
    return _stream(settings, names, prompt, max_tokens, temperature, version, True)


def _stream(
    settings: Settings,
    names: LlmTensors,
    prompt: str | bytes,
    max_tokens: int | None,
    temperature: float | None,
    version: int | None,
    streaming: bool,
) -> Iterator[str]:
    """The text of each response of a decoupled model, until its final one."""
    import tritonclient.grpc as module

    if names.stream:  # the model streams on request (TensorRT-LLM's BLS, one per version)
        model, text, batched, triton_version = names.model_name(version or 0), names.text, True, ""
        values: dict[str, Any] = {
            names.prompt: prompt,
            names.max_tokens: max_tokens,
            "temperature": temperature,
            names.stream: streaming,
        }
    else:  # a streaming model of its own (twin_llm_stream), versions as Triton versions
        model, text, batched, triton_version = names.stream_model, "text", False, str(version or "")
        values = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
    pieces: queue.SimpleQueue = queue.SimpleQueue()
    client = grpc_client(settings)
    client.start_stream(callback=lambda result, error: pieces.put((result, error)))
    try:
        client.async_stream_infer(
            model,
            _inputs(module, values, batched=batched),
            model_version=triton_version,
            enable_empty_final_response=True,
        )
        while True:
            result, error = pieces.get(timeout=settings.serving_request_timeout_s)
            if error is not None:
                raise error
            response = result.get_response()
            if result.as_numpy(text) is not None:
                yield _text(result.as_numpy(text).reshape(-1)[0])
            if response.parameters["triton_final_response"].bool_param:
                return
    finally:
        client.stop_stream()
        client.close()


def stream_answer(
    settings: Settings, query: str, *, author: str | None = None, version: int | None = None
) -> tuple[dict[str, Any], Iterator[str]]:
    """twin_rag's sources (retrieval and prompt in Triton, `prompt_only`), then the answer
    streamed from `twin_llm_stream` with the same prompt and version. Returns (result, pieces);
    pieces is empty when nothing relevant was found (result["answer"] says so)."""
    result = ask(settings, query, author=author, version=version, prompt_only=True)
    meta = result["meta"]
    if not meta.get("grounded"):
        return result, iter(())
    pieces = stream_text(
        settings, meta["prompt"], max_tokens=meta["max_tokens"], version=meta["model_version"]
    )
    return result, pieces
