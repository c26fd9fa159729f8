"""The optional LLM judge against a local server speaking the OpenAI chat-completions protocol
(the outside world: a hosted model): scores parsed from JSON replies, replies it cannot score
counted as failed and left out of the means, and the rubric sent with each answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from twin.training.judge import judge_answers

# What the judge model answers, by the instruction it is shown.
REPLIES = {
    "clean": (200, '{"accuracy": {"score": 3}, "style": {"score": 2}}'),
    "prose": (200, 'Sure! Here is my verdict: {"accuracy": {"score": 1}, "style": 1} Thanks.'),
    "out-of-range": (200, '{"accuracy": {"score": 5}, "style": {"score": 2}}'),
    "not-json": (200, "I would rate this answer highly."),
    "server-error": (500, ""),
}


class FakeJudge(BaseHTTPRequestHandler):
    prompts: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions"
        prompt = body["messages"][-1]["content"]
        self.prompts.append(prompt)
        instruction = prompt.split("Instruction: ", 1)[1].split("\n", 1)[0]
        status, content = REPLIES[instruction]
        payload = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        data = json.dumps(payload if status == 200 else {"error": "boom"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeJudge.prompts.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_scores_are_averaged_and_unscorable_replies_counted(judge_url: str) -> None:
    heldout = [(name, "the author's answer") for name in REPLIES]
    answers = [f"the model's answer to {name}" for name in REPLIES]

    result = judge_answers(judge_url, "judge-model", heldout, answers)

    # clean (3, 2) and prose (1, 1) are scored; the other three are failures
    assert result == {"judge_accuracy": 2.0, "judge_style": 1.5, "judge_failed": 3.0}
    assert len(FakeJudge.prompts) == len(REPLIES)
    assert all("Accuracy" in p and "Style" in p for p in FakeJudge.prompts)
    assert "the model's answer to clean" in FakeJudge.prompts[0]


def test_a_judge_that_scores_nothing_reports_only_failures(judge_url: str) -> None:
    result = judge_answers(judge_url, None, [("not-json", "x")], ["an answer"])
    assert result == {"judge_failed": 1.0}
