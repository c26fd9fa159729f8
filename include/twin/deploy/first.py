"""A first deployment's evidence: its version's own answers to its author's evaluation questions.

With no champion there is nothing to compare against, so before the version can be promoted it
is asked `first_questions` of its author's evaluation questions (their newest question set in
`ml`, built by the datasets stage) through twin_rag, the way clients will ask it: retrieval,
prompt and generation, naming the version explicitly (twin_rag has no champion to route to yet),
up to `deploy_concurrency` questions in flight.
Each answer, with the sources it had and its latency, is stored in `serving.deployment_answers`,
so a resumed run asks only what is missing; `twin.deploy.checks.first_deployment_report` then
holds the answers to the absolute floors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from twin.deploy.checks import VersionAnswer
from twin.deploy.lineage import VersionAuthor
from twin.domain.questions import EvalQuestion
from twin.settings import Settings
from twin.store import deployment_answers as store

log = logging.getLogger(__name__)


class NoQuestions(LookupError):
    """The version's author has no evaluation question to ask (the reason is the message)."""


def questions_for(settings: Settings, who: VersionAuthor, n: int) -> list[EvalQuestion]:
    """`n` of the author's evaluation questions (a stable choice: by question id), or
    NoQuestions naming why there are none."""
    from twin.store.questions import latest_question_set

    if who.author is None:
        raise NoQuestions(f"no author to ask questions of: {who.problem}")
    snapshot = latest_question_set(settings, who.author)
    if snapshot is None or not snapshot.questions:
        raise NoQuestions(
            f"author {who.author!r} has no evaluation question set in ml.question_sets "
            "(twin_datasets builds it from their marts)"
        )
    return sorted(snapshot.questions, key=lambda q: q.question_id)[:n]


def ask_questions(
    settings: Settings,
    conn: Any,
    deployment_id: str,
    version: int,
    author: str,
    questions: Sequence[EvalQuestion],
    *,
    max_tokens: int | None = None,
    deadline_s: float | None = None,
) -> int:
    """Ask `version` every question not answered yet, through twin_rag; returns how many were
    asked. A failed request is stored with its error (a figure, not a crash)."""
    from twin.serving.client import ask, timed_calls
    from twin.serving.repository import ensure_rag_without_champion

    done = store.answered_ids(conn, deployment_id)
    todo = [q for q in questions if q.question_id not in done]
    if not todo:
        return 0
    ensure_rag_without_champion(settings)
    width = settings.deploy_concurrency
    started = time.monotonic()
    for start in range(0, len(todo), width):
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise TimeoutError(
                f"first-deployment questions stopped after {deadline_s:.0f} s with "
                f"{len(store.answered_ids(conn, deployment_id))} of {len(questions)} answered"
            )
        chunk = todo[start : start + width]
        results = timed_calls(
            lambda q: ask(
                settings, q.question, author=author, version=version, max_tokens=max_tokens
            ),
            chunk,
            width,
        )
        for q, (result, latency_ms) in zip(chunk, results, strict=True):
            answer, sources, error = "", [], None
            if isinstance(result, Exception):  # the version's failure is a figure, not a crash
                error = f"{type(result).__name__}: {result}"[:500]
            else:
                answer, sources = result["answer"], result["sources"]
            store.write_answer(
                conn,
                deployment_id,
                store.DeploymentAnswer(
                    question_id=q.question_id,
                    question=q.question,
                    expected_documents=q.document_ids,
                    answer=answer,
                    source_documents=tuple(s.get("document_id", "") for s in sources),
                    latency_ms=latency_ms,
                    error=error,
                    sources=tuple(sources),
                ),
            )
    log.info("deployment %s: asked %d evaluation questions of %s", deployment_id, len(todo), author)
    return len(todo)


def version_answers(conn: Any, deployment_id: str) -> list[VersionAnswer]:
    """The stored answers as the checks read them."""
    return [
        VersionAnswer(
            question=a.question,
            answer=a.answer,
            expected_documents=a.expected_documents,
            source_documents=a.source_documents,
            latency_ms=a.latency_ms,
            error=a.error,
        )
        for a in store.load_answers(conn, deployment_id)
    ]


def first_answers(
    settings: Settings, conn: Any, deployment_id: str, who: VersionAuthor, n: int
) -> tuple[list[VersionAnswer], str | None]:
    """The stored answers of a first deployment, and (when there are none) why."""
    answers = version_answers(conn, deployment_id)
    if answers:
        return answers, None
    try:
        questions_for(settings, who, n)
    except NoQuestions as err:
        return [], str(err)
    return [], "the version was asked none of its author's evaluation questions"
