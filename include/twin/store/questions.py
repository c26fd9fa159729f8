"""Evaluation question sets in the warehouse's `ml` schema, beside the dataset versions.

- `ml.eval_questions`: content-addressed questions (one row per `question_id`, written once and
  shared by every set that holds it), each labelled with the documents that answer it;
- `ml.question_sets`: one row per set version (an author's; its identity is the content hash of
  its questions and configuration), with counts and the documents it covers;
- `ml.question_set_members`: which questions a set holds.

Writing a set that already exists writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twin.domain.questions import (
    MAX_GENERATED_KEY,
    EvalQuestion,
    QuestionSetSnapshot,
    QuestionSetVersion,
)
from twin.settings import Settings

DDL = """
create schema if not exists ml;
create table if not exists ml.eval_questions (
    question_id     text primary key,
    question        text not null,
    document_ids    text[] not null,
    section         text not null default '',
    platform        text not null default '',
    source          text not null,
    tags            text[] not null default '{}',
    reference_time  timestamptz,
    created_at      timestamptz not null default now()
);
create table if not exists ml.question_sets (
    version              text primary key,
    author               text not null,
    created_at           timestamptz not null default now(),
    generator_config     jsonb not null,
    counts               jsonb not null,
    source_document_ids  text[] not null
);
create index if not exists question_sets_author_idx on ml.question_sets (author, created_at);
create table if not exists ml.question_set_members (
    version      text not null references ml.question_sets (version) on delete cascade,
    question_id  text not null references ml.eval_questions (question_id),
    primary key (version, question_id)
);
"""
SET_COLUMNS = "version, author, created_at, generator_config, counts, source_document_ids"
QUESTION_COLUMNS = (
    "q.question_id, q.question, q.document_ids, q.section, q.platform, q.source, q.tags, "
    "q.reference_time"
)


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the tables when missing (idempotent; one creator at a time)."""
    if conn.execute("select to_regclass('ml.question_set_members')").fetchone()[0] is None:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('twin.ml.questions'))")
            conn.execute(DDL)


def _connect(settings: Settings) -> psycopg.Connection:
    conn = psycopg.connect(
        settings.require("warehouse_dsn"),
        connect_timeout=max(1, int(settings.service_timeout_s)),
        application_name="twinops-questions",
        autocommit=True,
    )
    ensure_schema(conn)
    return conn


def _set(row: Sequence[Any]) -> QuestionSetVersion:
    return QuestionSetVersion(
        version=row[0],
        author=row[1],
        created_at=row[2],
        generator_config=row[3],
        counts=row[4],
        source_document_ids=tuple(row[5]),
    )


def _question(row: Sequence[Any]) -> EvalQuestion:
    return EvalQuestion(
        question_id=row[0],
        question=row[1],
        document_ids=tuple(row[2]),
        section=row[3],
        platform=row[4],
        source=row[5],
        tags=tuple(row[6]),
        reference_time=row[7],
    )


def list_question_sets(settings: Settings, author: str | None = None) -> list[QuestionSetVersion]:
    """Every question set, newest first (of one author when given)."""
    with _connect(settings) as conn:
        rows = conn.execute(
            f"""select {SET_COLUMNS} from ml.question_sets
                where %(author)s::text is null or author = %(author)s
                order by created_at desc, version""",
            {"author": author},
        ).fetchall()
    return [_set(r) for r in rows]


def _questions(conn: psycopg.Connection, version: str) -> tuple[EvalQuestion, ...]:
    rows = conn.execute(
        f"""select {QUESTION_COLUMNS} from ml.question_set_members m
            join ml.eval_questions q using (question_id)
            where m.version = %s order by q.source, q.document_ids, q.question_id""",
        (version,),
    ).fetchall()
    return tuple(_question(r) for r in rows)


def load_question_set(settings: Settings, version: str) -> QuestionSetSnapshot:
    """A set by its id or an unambiguous prefix (8+ characters); LookupError naming it."""
    version = version.strip()
    if len(version) < 8:
        raise LookupError(f"question set {version!r}: give at least 8 characters of its id")
    with _connect(settings) as conn:
        rows = conn.execute(
            f"select {SET_COLUMNS} from ml.question_sets where version like %s limit 2",
            (version.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        if len(rows) > 1:
            raise LookupError(f"question set {version!r} is ambiguous: give more characters")
        if not rows:
            raise LookupError(
                f"question set {version!r} does not exist in ml.question_sets "
                "(`twin datasets questions` lists them)"
            )
        found = _set(rows[0])
        return QuestionSetSnapshot(version=found, questions=_questions(conn, found.version))


def latest_question_set(settings: Settings, author: str) -> QuestionSetSnapshot | None:
    """The author's newest question set built without a cap (a capped build, `Max instructions`
    in twin_datasets, asks about a few documents only), with its questions; the newest capped
    one when every set is capped; None when there is none."""
    with _connect(settings) as conn:
        row = conn.execute(
            f"""select {SET_COLUMNS} from ml.question_sets where author = %s
                order by (generator_config ->> %s) is not null, created_at desc, version
                limit 1""",
            (author, MAX_GENERATED_KEY),
        ).fetchone()
        if row is None:
            return None
        found = _set(row)
        return QuestionSetSnapshot(version=found, questions=_questions(conn, found.version))


def write_question_set(
    settings: Settings, version: QuestionSetVersion, questions: Iterable[EvalQuestion]
) -> int:
    """Store a set and its questions in one transaction; returns the rows written (0 when the
    set exists: nothing at all is written then)."""
    questions = list(questions)
    with _connect(settings) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (version.version,))
        if conn.execute(
            "select 1 from ml.question_sets where version = %s", (version.version,)
        ).fetchone():
            return 0
        conn.execute(
            f"insert into ml.question_sets ({SET_COLUMNS}) values (%s, %s, %s, %s, %s, %s)",
            (
                version.version,
                version.author,
                version.created_at,
                Jsonb(version.generator_config),
                Jsonb(version.counts),
                list(version.source_document_ids),
            ),
        )
        written = 1
        with conn.cursor() as cur:
            for q in questions:
                cur.execute(
                    """insert into ml.eval_questions (question_id, question, document_ids,
                           section, platform, source, tags, reference_time)
                       values (%s, %s, %s, %s, %s, %s, %s, %s)
                       on conflict (question_id) do nothing""",
                    (
                        q.question_id,
                        q.question,
                        list(q.document_ids),
                        q.section,
                        q.platform,
                        q.source,
                        list(q.tags),
                        q.reference_time,
                    ),
                )
                written += cur.rowcount
            cur.executemany(
                "insert into ml.question_set_members (version, question_id) values (%s, %s)",
                [(version.version, q.question_id) for q in questions],
            )
            written += len(questions)
    return written
