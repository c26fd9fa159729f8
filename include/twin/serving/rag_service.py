"""What `twin_rag` does per request, outside Triton's API so it reads (and tests) as plain Python.

`RagService.answer` runs: validate → self-query, embed, hybrid retrieval, rerank (twin.rag) →
similarity floor → prompt with the author's voice and a context budget (twin.rag.prompt) →
generation through `generate` (a BLS call inside Triton) → PII redaction → answer + sources; then,
off the request path, the inference-log row and, for a share of requests, a shadow generation.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.rag.guardrails import NOT_WRITTEN, redact_pii
from twin.rag.prompt import build_prompt, sources_of
from twin.serving.backend_names import llm_tensors
from twin.serving.configs import RAG_MODEL
from twin.serving.inference_log import InferenceLogWriter
from twin.serving.repository import ROUTING_FILE, tokenizer_folder
from twin.serving.validation import InvalidRequest, check_max_tokens, decode_text
from twin.settings import Settings
from twin.store.model_repository import repository_store

log = logging.getLogger(__name__)

SHADOW_BACKLOG = 16
# (version, prompt, max_tokens) -> (text, prompt_tokens, completion_tokens)
# (version, prompt, max_tokens) -> (text, prompt tokens, completion tokens); None: not reported
GenerateFn = Callable[[int, str, int], tuple[str, int | None, int | None]]


def answering_author(configured: str, known: list[str]) -> str | None:
    """Whose passages a query that names no author searches: the platform's author when the
    index holds them, else the only author it holds, else every author (None)."""
    if configured in known:
        return configured
    return known[0] if len(known) == 1 else None


class RetrievalUnavailable(RuntimeError):
    """The warehouse cannot be reached; the request fails with this message."""


@dataclass
class RagAnswer:
    """The outputs of one request and what the log records about it."""

    answer: str
    sources: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def token_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two answers' lower-cased words (1.0: same words)."""
    left, right = set(a.lower().split()), set(b.lower().split())
    return len(left & right) / len(left | right) if left | right else 1.0


class RagService:
    """One per twin_rag instance: a warehouse connection (re-opened after a failure), tokenizers
    per twin_llm version, the inference-log writer and a one-thread shadow executor."""

    def __init__(self, settings: Settings, generate: GenerateFn, *, embedder: Any = None) -> None:
        from twin.rag.retrieve import default_embedder

        self.settings = settings
        self.generate = generate
        self.backend = llm_tensors(settings.serving_llm_backend)
        self.embedder = embedder or default_embedder(settings)
        self.repository = repository_store(settings)
        self._tokenizer_cache: Path | None = None
        self.writer = InferenceLogWriter(settings)
        self.shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._shadow_slots = threading.BoundedSemaphore(SHADOW_BACKLOG)
        self.shadow_skipped = 0
        self._retriever = None
        self._reranker = None  # built once, kept across reconnects
        self._tokenizers: dict[int, Any] = {}
        self._routing: tuple[str | None, dict[str, Any]] = (None, {})
        self._lock = threading.Lock()

    # --- state that may change while serving --------------------------------------------------

    def routing(self) -> dict[str, Any]:
        """`twin_rag/routing.json`, re-read when it changes (modification time, ETag)."""
        path = f"{RAG_MODEL}/{ROUTING_FILE}"
        stamp = self.repository.stamp(path)
        if stamp is None:
            return {}
        if stamp != self._routing[0]:
            text = self.repository.read_text(path)
            self._routing = (stamp, json.loads(text) if text else {})
        return self._routing[1]

    def tokenizer(self, version: int) -> Any:
        if version not in self._tokenizers:
            from transformers import AutoTokenizer

            if self._tokenizer_cache is None:
                self._tokenizer_cache = Path(tempfile.mkdtemp(prefix="twin-rag-tokenizers-"))
            folder = tokenizer_folder(self.settings, version, self._tokenizer_cache)
            if not folder.exists():
                raise InvalidRequest(
                    f"input 'model_version': twin_llm version {version} is not materialised"
                )
            self._tokenizers[version] = AutoTokenizer.from_pretrained(folder)
        return self._tokenizers[version]

    def retriever(self):
        """The retriever on a live connection; a broken one is replaced (Postgres came back)."""
        from twin.rag.rerank import default_reranker
        from twin.rag.retrieve import connect_retriever

        current = self._retriever
        if current is not None and not current.broken:
            return current
        if current is not None:
            current.close()
            self._retriever = None
        if self._reranker is None:
            self._reranker = default_reranker(
                self.settings.rerank_model_path, encoder=self.embedder
            )
        try:
            self._retriever = connect_retriever(
                self.settings, self.embedder, reranker=self._reranker
            )
        except Exception as exc:
            raise RetrievalUnavailable(
                "retrieval unavailable: the warehouse (Postgres) cannot be reached "
                f"({type(exc).__name__})"
            ) from None
        return self._retriever

    def warm_up(self) -> dict[str, float]:
        """Build what the first requests would otherwise wait for, before Triton calls this
        instance ready: the retriever (warehouse connection, reranker) and one search, which
        loads the embedding model, then the champion's tokenizer. Best effort: what fails here
        (the warehouse down, no champion yet) is built by the request that needs it, or refused
        there with its own clear error. Each step's seconds."""
        done: dict[str, float] = {}

        def search() -> None:
            with self._lock:
                try:
                    self.retriever().search("warm up", 1)
                except Exception:  # a half-made connection is not kept: the request reconnects
                    if self._retriever is not None:
                        self._retriever.close()
                        self._retriever = None
                    raise

        def tokenizer() -> None:
            champion = self.routing().get("champion")
            if champion is not None:
                self.tokenizer(int(champion))

        steps: list[tuple[str, Callable[[], None]]] = [
            ("retrieval", search),
            ("tokenizer", tokenizer),
        ]
        for name, work in steps:
            clock = time.perf_counter()
            try:
                work()
            except Exception as exc:  # the first request that needs it retries and reports
                log.warning("twin_rag warm-up: %s left to the first request (%s)", name, exc)
                continue
            done[name] = round(time.perf_counter() - clock, 3)
        log.info("twin_rag warm-up: %s", done)
        return done

    # --- one request ----------------------------------------------------------------------------

    def answer(
        self,
        query: Any,
        author: Any = None,
        model_version: int | None = None,
        max_tokens: int | None = None,
        *,
        prompt_only: bool = False,
    ) -> RagAnswer:
        """Answer one query; raises `InvalidRequest` or `RetrievalUnavailable` with a clear message.
        Every call, failed or not, leaves one inference-log row. With `prompt_only` nothing is
        generated: `meta` carries the prompt and max_tokens, for a client that streams the
        generation from `twin_llm_stream` itself (`twin ask --stream`)."""
        request_id = uuid.uuid4().hex
        row: dict[str, Any] = {"request_id": request_id, "model": RAG_MODEL, "query": ""}
        timings: dict[str, float] = {}
        start = time.perf_counter()
        try:
            result = self._answer(
                query, author, model_version, max_tokens, row, timings, prompt_only
            )
            result.meta["request_id"] = request_id  # the key of its log and shadow rows
            row["status"] = "prompt_only" if prompt_only else "ok"
            return result
        except InvalidRequest as exc:
            row.update(status="invalid", error=str(exc))
            raise
        except RetrievalUnavailable as exc:
            row.update(status="unavailable", error=str(exc))
            raise
        except Exception as exc:
            row.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        finally:
            timings["total"] = round((time.perf_counter() - start) * 1000, 2)
            row["latency_ms"] = timings
            self.writer.submit("inference_log", row)

    def _answer(
        self, query, author, model_version, max_tokens, row, timings, prompt_only=False
    ) -> RagAnswer:
        s = self.settings
        text = decode_text("query", query, max(s.serving_max_query_chars * 4, 1))
        row["query"] = text[: s.serving_max_query_chars]
        if len(text) > s.serving_max_query_chars:
            raise InvalidRequest(
                f"input 'query' is {len(text)} characters; the limit is {s.serving_max_query_chars}"
            )
        who = None if author is None else decode_text("author", author, 512).strip()
        limit = check_max_tokens(max_tokens, _limits(s))
        routing = self.routing()
        version = int(model_version) if model_version is not None else routing.get("champion")
        if version is None:
            raise InvalidRequest("no champion twin_llm version is set and none was requested")
        row["model_version"] = version
        tokenizer = self.tokenizer(version)

        clock = time.perf_counter()
        with self._lock:
            retriever = self.retriever()
            try:
                known = retriever.known_authors
                if who is not None and who not in known:
                    raise InvalidRequest(
                        f"input 'author': unknown author {who!r}; "
                        f"known: {', '.join(known) or 'none'}"
                    )
                who = who or answering_author(s.author, known)
                row["author"] = who
                from twin.rag.query import SearchFilters

                filters = SearchFilters(author=who) if who else None
                passages = retriever.search(text, s.serving_rag_k, filters=filters)
                trace = retriever.last_trace.timings_ms
            except InvalidRequest:
                raise
            except Exception as exc:
                import psycopg

                if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                    retriever.conn.close()
                    raise RetrievalUnavailable(
                        "retrieval unavailable: the warehouse (Postgres) connection failed; "
                        "retry shortly"
                    ) from None
                raise
        timings["retrieval"] = round((time.perf_counter() - clock) * 1000, 2)
        timings.update({f"retrieval_{k}": round(v, 2) for k, v in trace.items() if k != "total"})
        row["retrieved"] = [
            {"chunk_id": p.chunk_id, "score": float(p.score), "similarity": p.similarity}
            for p in passages
        ]
        best = max((p.similarity or 0.0 for p in passages), default=0.0)
        if best < s.serving_similarity_floor:
            row.update(grounded=False)
            return RagAnswer(
                NOT_WRITTEN,
                [],
                {
                    "grounded": False,
                    "model_version": version,
                    "best_similarity": best,
                    "timings_ms": timings,
                },
            )

        clock = time.perf_counter()
        plan = build_prompt(
            tokenizer,
            text,
            passages,
            author=who or "the author",
            context_tokens=s.serving_context_tokens,
        )
        timings["prompt"] = round((time.perf_counter() - clock) * 1000, 2)
        if prompt_only:
            row.update(grounded=True)
            meta = {
                "grounded": True,
                "model_version": version,
                "backend": self.backend.backend,
                "llm_model": self.backend.model_name(version),
                "prompt": plan.prompt,
                "max_tokens": limit,
                "context_tokens": plan.context_tokens,
                "instructions_removed": plan.instructions_removed,
                "timings_ms": timings,
            }
            return RagAnswer("", sources_of(plan.passages), meta)
        clock = time.perf_counter()
        raw, prompt_tokens, completion_tokens = self.generate(version, plan.prompt, limit)
        timings["generation"] = round((time.perf_counter() - clock) * 1000, 2)
        if prompt_tokens is None:  # the backend reports no counts (TensorRT-LLM)
            prompt_tokens = _count(tokenizer, plan.prompt)
        if completion_tokens is None:
            completion_tokens = _count(tokenizer, raw)
        answer, redacted = redact_pii(raw.strip())
        row.update(grounded=True, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        row["shadow_version"] = self._maybe_shadow(
            row["request_id"],
            routing,
            version,
            plan.prompt,
            limit,
            answer,
            completion_tokens,
            timings["generation"],
        )
        meta = {
            "grounded": True,
            "model_version": version,
            "backend": self.backend.backend,
            "llm_model": self.backend.model_name(version),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "context_tokens": plan.context_tokens,
            "instructions_removed": plan.instructions_removed,
            "pii_redacted": redacted,
            "best_similarity": best,
            "timings_ms": timings,
        }
        return RagAnswer(answer, sources_of(plan.passages), meta)

    # --- shadow traffic -------------------------------------------------------------------------

    def _maybe_shadow(self, request_id, routing, version, prompt, limit, answer, tokens, ms):
        """Mirror this request to the shadow version (returned) or not (None). At most
        `SHADOW_BACKLOG` mirrored requests wait at a time: beyond that, requests are not mirrored
        rather than queue without bound behind a slow shadow."""
        shadow = routing.get("shadow")
        share = float(routing.get("shadow_share") or 0.0)
        if shadow is None or int(shadow) == version or random.random() >= share:
            return None
        if not self._shadow_slots.acquire(blocking=False):
            self.shadow_skipped += 1
            return None
        self.shadow_pool.submit(
            self._shadow, request_id, version, int(shadow), prompt, limit, answer, tokens, ms
        )
        return int(shadow)

    def _shadow(self, request_id, champion, shadow, prompt, limit, answer, tokens, ms) -> None:
        """Generate with the shadow version over Triton's HTTP API and log the pair."""
        from twin.serving.client import generate_text

        row: dict[str, Any] = {
            "request_id": request_id,
            "champion_version": champion,
            "shadow_version": shadow,
            "prompt": prompt,
            "champion_answer": answer,
            "champion_tokens": tokens,
            "champion_latency_ms": ms,
            "backend": self.backend.backend,
        }
        start = time.perf_counter()
        try:
            result = generate_text(self.settings, prompt, max_tokens=limit, version=shadow)
            shadow_answer, _ = redact_pii(result["text"])
            row.update(
                shadow_answer=shadow_answer,
                shadow_tokens=result["completion_tokens"],
                token_overlap=token_overlap(answer, shadow_answer),
            )
        except Exception as exc:  # a failing shadow is recorded, never surfaced to the client
            row["shadow_error"] = f"{type(exc).__name__}: {exc}"[:500]
        row["shadow_latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        self._shadow_slots.release()
        self.writer.submit("shadow_comparisons", row)

    def close(self) -> None:
        self.shadow_pool.shutdown(wait=True, cancel_futures=False)
        self.writer.close()
        if self._retriever is not None:
            self._retriever.close()


def _limits(settings: Settings):
    from twin.serving.validation import RequestLimits

    return RequestLimits(
        max_prompt_bytes=settings.serving_max_prompt_bytes,
        max_prompt_tokens=settings.serving_max_prompt_tokens,
        max_new_tokens=settings.serving_max_new_tokens,
        default_max_tokens=settings.serving_default_max_tokens,
    )
