"""An OpenAI-compatible chat completions endpoint (OpenAI, vLLM, TGI, Ollama, or our own server).

Requests go out in concurrent batches. 5xx, 429 and transport errors are retried with exponential
backoff (a 429's `Retry-After` is honoured); a reply is JSON validated with pydantic, and an
invalid, empty or over-long reply drops that one item with its reason. Token usage is summed and
logged; the key never is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from twin.datasets.generators.base import AnswerPrompt, Generated, SectionPrompt, Usage
from twin.datasets.generators.local import MAX_INSTRUCTION_CHARS, MIN_INSTRUCTION_CHARS

log = logging.getLogger(__name__)

PROMPT_VERSION = "1"
MAX_RETRY_AFTER_S = 60.0
INSTRUCTION_SYSTEM = (
    "You write the request a reader would type to get a given text as the answer. Reply with a "
    'JSON object {"instruction": "..."} and nothing else.'
)
QUESTION_SYSTEM = (
    "You write one question a reader would ask that a given text answers. Reply with a JSON "
    'object {"question": "..."} and nothing else.'
)
ANSWER_SYSTEM = 'Answer the request. Reply with a JSON object {"answer": "..."} and nothing else.'


class InstructionReply(BaseModel):
    instruction: str = Field(min_length=MIN_INSTRUCTION_CHARS, max_length=MAX_INSTRUCTION_CHARS)


class QuestionReply(BaseModel):
    question: str = Field(min_length=MIN_INSTRUCTION_CHARS, max_length=MAX_INSTRUCTION_CHARS)


class AnswerReply(BaseModel):
    answer: str = Field(min_length=1)


class RetryableStatus(Exception):
    """A 429 or 5xx answer: worth another try."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class EndpointGenerator:
    """Instructions and answers from an OpenAI-compatible `/v1/chat/completions`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        batch_size: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_answer_chars: int = 4000,
    ) -> None:
        url = base_url.rstrip("/")
        self.url = (
            url
            if url.endswith("/chat/completions")
            else (
                f"{url}/chat/completions" if url.endswith("/v1") else f"{url}/v1/chat/completions"
            )
        )
        self.model = model
        self.name = f"endpoint-{model}"
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_answer_chars = max_answer_chars
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self.usage = Usage()

    @property
    def config(self) -> dict[str, object]:
        # the URL's host is not part of the identity: the same model served elsewhere is the same
        return {
            "kind": "endpoint",
            "model": self.model,
            "prompts": PROMPT_VERSION,
            "temperature": 0,
        }

    def close(self) -> None:
        self._client.close()

    def instructions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        def one(section: SectionPrompt) -> Generated:
            heading = " › ".join(section.heading_path)
            user = (
                f"Platform: {section.platform}\nTitle: {section.title}\n"
                + (f"Section: {heading}\n" if heading else "")
                + f"\n{section.text[:3000]}"
            )
            return self._ask(section.key, INSTRUCTION_SYSTEM, user, InstructionReply, "instruction")

        return self._batched(sections, one)

    def questions(self, sections: Sequence[SectionPrompt]) -> list[Generated]:
        def one(section: SectionPrompt) -> Generated:
            user = f"Title: {section.title}\n\n{section.text[:3000]}"
            return self._ask(section.key, QUESTION_SYSTEM, user, QuestionReply, "question")

        return self._batched(sections, one)

    def answers(self, prompts: Sequence[AnswerPrompt]) -> list[Generated]:
        def one(prompt: AnswerPrompt) -> Generated:
            user = f"{prompt.prompt}\n\nAnswer in about {prompt.target_chars} characters."
            return self._ask(prompt.key, ANSWER_SYSTEM, user, AnswerReply, "answer")

        return self._batched(prompts, one)

    def _batched(self, items: Sequence[Any], one: Callable[[Any], Generated]) -> list[Generated]:
        results: list[Generated] = []
        with ThreadPoolExecutor(max_workers=self.batch_size) as pool:
            for start in range(0, len(items), self.batch_size):
                results.extend(pool.map(one, items[start : start + self.batch_size]))
        log.info(
            "generator %s: %d calls, %d prompt + %d completion tokens, %d retries, failures %s",
            self.name,
            self.usage.calls,
            self.usage.prompt_tokens,
            self.usage.completion_tokens,
            self.usage.retries,
            self.usage.failures,
        )
        return results

    def _ask(
        self, key: str, system: str, user: str, reply: type[BaseModel], field: str
    ) -> Generated:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
        try:
            payload = self._post(body)
        except (RetryableStatus, httpx.HTTPError) as exc:
            return self._fail(key, "generator_endpoint_error", transient=True, detail=str(exc))
        except ValueError:  # a body that is not JSON at all
            return self._fail(key, "generator_invalid_response")
        usage = payload.get("usage") or {}
        self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        try:
            content = payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            return self._fail(key, "generator_invalid_response")
        if not content.strip():
            return self._fail(key, "generator_empty_output")
        try:
            data = json.loads(content)
        except json.JSONDecodeError:
            return self._fail(key, "generator_invalid_json")
        if isinstance(data, dict) and not str(data.get(field) or "").strip():
            return self._fail(key, "generator_empty_output")
        try:
            text = getattr(reply.model_validate(data), field).strip()
        except ValidationError as exc:
            too_long = any(e["type"] == "string_too_long" for e in exc.errors())
            return self._fail(key, "generator_too_long" if too_long else "generator_invalid_json")
        if len(text) > self.max_answer_chars:
            return self._fail(key, "generator_too_long")
        return Generated(key, text=text)

    def _fail(
        self, key: str, reason: str, *, transient: bool = False, detail: str = ""
    ) -> Generated:
        self.usage.failures[reason] = self.usage.failures.get(reason, 0) + 1
        if detail:
            log.warning("generator %s: item %s failed: %s", self.name, key[:16], detail)
        return Generated(key, reason=reason, transient=transient)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        exponential = wait_exponential(multiplier=self.backoff_s, max=30)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
                return min(exc.retry_after, MAX_RETRY_AFTER_S)
            return exponential(state)

        def before_sleep(state: RetryCallState) -> None:
            self.usage.retries += 1

        for attempt in Retrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, RetryableStatus | httpx.TransportError)
            ),
            wait=wait,
            stop=stop_after_attempt(self.max_retries + 1),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                self.usage.calls += 1
                response = self._client.post(self.url, json=body)
                if response.status_code == 429 or response.status_code >= 500:
                    raise RetryableStatus(response.status_code, _retry_after(response))
                response.raise_for_status()
                return response.json()
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
