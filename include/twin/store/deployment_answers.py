"""`serving.deployment_answers`: a deployment's own answers to its author's evaluation questions.

A first deployment has no champion to compare against; it asks the version the author's
evaluation questions through twin_rag, and each answer is one row here (keyed by deployment and
question, so a resumed run asks only what is missing): the question, the documents that should be
among the sources, the answer, the sources it had, the latency and any error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

DDL = """
create schema if not exists serving;
create table if not exists serving.deployment_answers (
    deployment_id       text not null,
    question_id         text not null,
    question            text not null,
    expected_documents  text[] not null,
    answer              text not null default '',
    source_documents    text[] not null default '{}',
    sources             jsonb not null default '[]'::jsonb,
    latency_ms          double precision,
    error               text,
    answered_at         timestamptz not null default now(),
    primary key (deployment_id, question_id)
);
"""


@dataclass(frozen=True)
class DeploymentAnswer:
    """One stored answer of a deployment's version."""

    question_id: str
    question: str
    expected_documents: tuple[str, ...]
    answer: str
    source_documents: tuple[str, ...]
    latency_ms: float | None
    error: str | None
    sources: tuple[dict[str, Any], ...] = ()


def ensure_schema(conn: psycopg.Connection) -> None:
    if conn.execute("select to_regclass('serving.deployment_answers')").fetchone()[0] is None:
        conn.execute(DDL)


def answered_ids(conn: psycopg.Connection, deployment_id: str) -> set[str]:
    ensure_schema(conn)
    rows = conn.execute(
        "select question_id from serving.deployment_answers where deployment_id = %s",
        (deployment_id,),
    ).fetchall()
    return {r[0] for r in rows}


def write_answer(conn: psycopg.Connection, deployment_id: str, answer: DeploymentAnswer) -> None:
    """Store one answer (a question already answered keeps its first answer)."""
    ensure_schema(conn)
    conn.execute(
        """insert into serving.deployment_answers (deployment_id, question_id, question,
               expected_documents, answer, source_documents, sources, latency_ms, error)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (deployment_id, question_id) do nothing""",
        (
            deployment_id,
            answer.question_id,
            answer.question,
            list(answer.expected_documents),
            answer.answer,
            list(answer.source_documents),
            Jsonb(list(answer.sources)),
            answer.latency_ms,
            answer.error,
        ),
    )


def load_answers(conn: psycopg.Connection, deployment_id: str) -> list[DeploymentAnswer]:
    """Every stored answer of a deployment, in question order."""
    ensure_schema(conn)
    rows = conn.execute(
        """select question_id, question, expected_documents, answer, source_documents,
                  latency_ms, error, sources
           from serving.deployment_answers where deployment_id = %s order by question_id""",
        (deployment_id,),
    ).fetchall()
    return [_answer(r) for r in rows]


def _answer(row: Sequence[Any]) -> DeploymentAnswer:
    return DeploymentAnswer(
        question_id=row[0],
        question=row[1],
        expected_documents=tuple(row[2]),
        answer=row[3],
        source_documents=tuple(row[4]),
        latency_ms=row[5],
        error=row[6],
        sources=tuple(row[7] or ()),
    )
