"""The endpoint generator against a local server speaking the OpenAI chat completions API that
misbehaves per document: invalid JSON, empty text, an over-long answer, 500s, a 429 with
Retry-After, and PII. Each bad item is dropped (or retried) with its reason; nothing else is
lost."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from sample_author import load_documents
from tests.integration.test_feature_pipeline import MARTS_DDL
from twin.datasets.build import DatasetOptions, build_dataset
from twin.datasets.generators.endpoint import EndpointGenerator
from twin.settings import Settings
from twin.store.warehouse import scratch_database, warehouse_connection

pytestmark = pytest.mark.integration

AUTHOR = "Fault Author"
FAULTS = [
    "fine-one",
    "fine-two",
    "invalid-json",
    "empty",
    "overlong",
    "error500",
    "ratelimit",
    "pii",
]
# Real, distinct posts of the sample author (no personal data in them) as the documents' bodies.
BODIES = [
    d.body for d in load_documents() if d.platform == "linkedin" and not d.pii and not d.defect
][: len(FAULTS)]


class FakeChatServer(BaseHTTPRequestHandler):
    """POST /v1/chat/completions; the fault is named by the document title in the prompt."""

    seen: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions"
        assert self.headers.get("Authorization") == "Bearer test-key"
        user = body["messages"][-1]["content"]
        if not user.startswith("Platform:") and user.startswith("Title: "):
            # the author's evaluation questions (built with the dataset) are answered well: the
            # faults below are the instruction and answer requests'
            with self.lock:
                self.seen["question"] += 1
            return self._content(json.dumps({"question": "How do you keep reruns safe?"}))
        title = re.search(r"Title: (\S+)", user)
        fault = title.group(1) if title else "answer"
        with self.lock:
            self.seen[fault] += 1
            count = self.seen[fault]
        if fault == "error500":
            return self._reply(500, {"error": "boom"})
        if fault == "ratelimit" and count == 1:
            return self._reply(429, {"error": "slow down"}, {"Retry-After": "1"})
        if fault == "answer":
            target = int(re.search(r"about (\d+) characters", user).group(1))
            sentence = "A generic answer says that it depends on many factors. "
            text = (sentence * (target // len(sentence) + 1))[:target].rsplit(".", 1)[0] + "."
            return self._content(json.dumps({"answer": text}))
        content = {
            "invalid-json": '{"instruction": "unterminated',
            "empty": "",
            "overlong": json.dumps({"instruction": "Explain " + "everything " * 60}),
            "pii": json.dumps({"instruction": "Email ada@lindqvist.example about reruns."}),
        }.get(fault, json.dumps({"instruction": f"Write a post about reruns ({fault})."}))
        return self._content(content)

    def _content(self, content: str) -> None:
        self._reply(
            200,
            {
                "choices": [{"message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 20},
            },
        )

    def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def chat_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fault_marts(stack_settings: Settings) -> Iterator[Settings]:
    with scratch_database(stack_settings.require("warehouse_dsn"), "dsfault") as dsn:
        settings = stack_settings.model_copy(update={"warehouse_dsn": dsn})
        with warehouse_connection(settings, autocommit=True) as conn:
            conn.execute(MARTS_DDL)
            for i, fault in enumerate(FAULTS):
                body = BODIES[i]
                conn.execute(
                    """insert into marts.documents (document_id, author, platform,
                           document_kind, title, body, clean_hash, language, published_at)
                       values (%s, %s, 'linkedin', 'post', %s, %s, %s, 'en', %s)""",
                    (f"doc-{fault}", AUTHOR, fault, body, f"hash-{fault}",
                     datetime(2024, 1, 1 + i, tzinfo=UTC)),
                )  # fmt: skip
        yield settings


def endpoint(url: str) -> EndpointGenerator:
    return EndpointGenerator(
        url, "fake-model", "test-key", batch_size=4, max_retries=2, backoff_s=0.01
    )


def test_each_fault_drops_or_retries_only_its_item(chat_server, fault_marts) -> None:
    options = DatasetOptions(
        author=AUTHOR, generator="endpoint", test_share=0.0, min_answer_chars=50
    )
    generator = endpoint(chat_server)
    began = time.perf_counter()
    first = build_dataset(fault_marts, options, generator=generator, log_mlflow=False)
    seconds = time.perf_counter() - began

    drops = first.drop_reasons
    seen = FakeChatServer.seen  # requests per document (a long post is two sections)
    assert drops["generator_invalid_json"] == seen["invalid-json"] >= 1
    assert drops["generator_empty_output"] == seen["empty"] >= 1
    assert drops["generator_too_long"] == seen["overlong"] >= 1
    assert drops["generator_endpoint_error"] == 1
    assert drops["pii"] == seen["pii"] >= 1
    good = seen["fine-one"] + seen["fine-two"] + 1  # and the rate-limited one, after its retry
    assert first.counts["instruction/train"] == good
    assert first.counts["preference/train"] == good
    assert FakeChatServer.seen["ratelimit"] == 2 and FakeChatServer.seen["error500"] == 3
    assert seconds >= 1.0  # the 429's Retry-After was waited for
    assert first.usage["retries"] == 3  # one after the 429, two after the 500s
    assert first.usage["prompt_tokens"] > 0 and first.usage["completion_tokens"] > 0
    assert seen["question"] == len(FAULTS)  # one evaluation question per document

    # a second run retries only the item that failed for a transient reason
    FakeChatServer.seen.clear()
    second = build_dataset(fault_marts, options, generator=endpoint(chat_server), log_mlflow=False)
    assert set(FakeChatServer.seen) == {"error500"}  # the question set is not asked again
    assert second.version == first.version and second.rows_written == 0
