"""The `serving` schema: one row per twin_rag request, one per mirrored (shadow) request.

`serving.inference_log` holds what monitoring needs and nothing more: the query text, the
retrieved chunk ids and scores, the model version, token counts and per-step latencies.
`serving.shadow_comparisons` holds the champion's and the shadow's answers to the same prompt, for
the deployment stage to judge. Every writer goes through `write_inference_log` and
`write_shadow_comparisons`, which redact personal data and secrets from the free-text columns
(users' questions, prompts, answers, errors) with `twin.domain.pii.redact` before a row is stored;
`delete_expired` keeps them (and the quarantine) within the retention period
(`serving_log_retention_days`).
A row Postgres refuses is kept in `serving.log_quarantine` (redacted, with the cause) by
`quarantine_row`, so one bad row never blocks the others."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from twin.domain.pii import redact

SERVING_DDL = """
create schema if not exists serving;
create table if not exists serving.inference_log (
    request_id text primary key,
    logged_at timestamptz not null default now(),
    model text not null,
    model_version int,
    author text,
    query text not null,
    status text not null,
    error text,
    grounded boolean,
    retrieved jsonb not null default '[]',
    prompt_tokens int,
    completion_tokens int,
    latency_ms jsonb not null default '{}',
    shadow_version int
);
create index if not exists inference_log_logged_at on serving.inference_log (logged_at);
create table if not exists serving.shadow_comparisons (
    request_id text primary key,
    compared_at timestamptz not null default now(),
    champion_version int not null,
    shadow_version int not null,
    prompt text not null,
    champion_answer text not null,
    shadow_answer text,
    shadow_error text,
    champion_tokens int,
    shadow_tokens int,
    champion_latency_ms double precision,
    shadow_latency_ms double precision,
    token_overlap double precision,
    backend text
);
-- the LLM backend both answers came from (python, tensorrtllm); added after the table's first
-- release
alter table serving.shadow_comparisons add column if not exists backend text;
create index if not exists shadow_comparisons_compared_at
    on serving.shadow_comparisons (compared_at);
create table if not exists serving.log_quarantine (
    id bigint generated always as identity primary key,
    quarantined_at timestamptz not null default now(),
    target text not null,
    request_id text,
    error text not null,
    row_json text not null
);
"""

_LOG_COLUMNS = (
    "request_id",
    "model",
    "model_version",
    "author",
    "query",
    "status",
    "error",
    "grounded",
    "retrieved",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "shadow_version",
)
_SHADOW_COLUMNS = (
    "request_id",
    "champion_version",
    "shadow_version",
    "prompt",
    "champion_answer",
    "shadow_answer",
    "shadow_error",
    "champion_tokens",
    "shadow_tokens",
    "champion_latency_ms",
    "shadow_latency_ms",
    "token_overlap",
    "backend",
)
_JSON_COLUMNS = {"retrieved", "latency_ms"}
# free text that may carry a user's personal data or a secret: redacted before it is stored
_REDACTED_COLUMNS = {
    "inference_log": ("query", "error"),
    "shadow_comparisons": ("prompt", "champion_answer", "shadow_answer", "shadow_error"),
    "log_quarantine": (
        "query",
        "error",
        "prompt",
        "champion_answer",
        "shadow_answer",
        "shadow_error",
    ),
}
_TIME_COLUMNS = {
    "inference_log": "logged_at",
    "shadow_comparisons": "compared_at",
    "log_quarantine": "quarantined_at",
}


def serving_schema_exists(conn: psycopg.Connection) -> bool:
    """Whether every table of the `serving` schema is there, with its newest column (no
    privilege beyond USAGE needed)."""
    probe = _TIME_COLUMNS | {"shadow_comparisons": "backend"}  # added after the first release
    found = conn.execute(
        "select count(*) from information_schema.columns where table_schema = 'serving' "
        "and (table_name, column_name) in (select * from unnest(%s::text[], %s::text[]))",
        (list(probe), list(probe.values())),
    ).fetchone()[0]
    return found == len(probe)


def ensure_serving_schema(conn: psycopg.Connection) -> None:
    """Create the `serving` schema and its tables when missing (idempotent). Runs no DDL when
    they are all there, so the serving role, which may not create, can call it."""
    if serving_schema_exists(conn):
        return
    with conn.transaction():
        conn.execute(SERVING_DDL)


def grant_serving_access(conn: psycopg.Connection, role: str) -> None:
    """Let `role` (twin_rag's login) do in this database what serving does and no more: read the
    chunk store (`vectors`), insert into and expire the serving logs. Chunk tables built later
    are covered by default privileges of the connected (owning) role; those are per database,
    so this runs in every database twin_rag is installed against. Idempotent."""
    from psycopg import sql

    from twin.store.vectors import ensure_vector_schema

    ensure_serving_schema(conn)
    ensure_vector_schema(conn)
    who = sql.Identifier(role)
    logs = sql.SQL(", ").join(sql.Identifier("serving", t) for t in _TIME_COLUMNS)
    statements = [
        sql.SQL("grant usage on schema serving, vectors to {}").format(who),
        sql.SQL("grant select on all tables in schema vectors to {}").format(who),
        sql.SQL("alter default privileges in schema vectors grant select on tables to {}").format(
            who
        ),
        sql.SQL("grant select, insert, delete on {} to {}").format(logs, who),
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def redact_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with its free-text columns of `table` redacted (`twin.domain.pii.redact`)."""
    out = dict(row)
    for column in _REDACTED_COLUMNS.get(table, ()):
        if isinstance(out.get(column), str):
            out[column] = redact(out[column])[0]
    return out


def _insert(
    conn: psycopg.Connection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> int:
    if not rows:
        return 0
    placeholders = ", ".join(["%s"] * len(columns))
    statement = (
        f"insert into serving.{table} ({', '.join(columns)}) values ({placeholders}) "
        "on conflict (request_id) do nothing"
    )
    values = [
        [json.dumps(row.get(c), default=str) if c in _JSON_COLUMNS else row.get(c) for c in columns]
        for row in (redact_row(table, row) for row in rows)
    ]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(statement, values)
    return len(rows)


def write_inference_log(conn: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert inference-log rows (keys: the table's columns); a re-sent request_id is ignored."""
    return _insert(conn, "inference_log", _LOG_COLUMNS, rows)


def write_shadow_comparisons(conn: psycopg.Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert shadow comparison rows (keys: the table's columns); idempotent per request_id."""
    return _insert(conn, "shadow_comparisons", _SHADOW_COLUMNS, rows)


def quarantine_row(
    conn: psycopg.Connection, table: str, row: Mapping[str, Any], error: BaseException | str
) -> None:
    """Keep a row Postgres refused for `table` in `serving.log_quarantine`: its request id, the
    cause, and the row as JSON (redacted; NUL characters escaped, so it always stores)."""
    cause = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = json.dumps(redact_row("log_quarantine", row), default=str, ensure_ascii=True)
    request_id = row.get("request_id")
    conn.execute(
        "insert into serving.log_quarantine (target, request_id, error, row_json) "
        "values (%s, %s, %s, %s)",
        (
            table,
            None if request_id is None else str(request_id).replace("\x00", "\\x00"),
            redact(cause.replace("\x00", "\\x00"))[0][:1000],
            text,
        ),
    )


def delete_expired(conn: psycopg.Connection, retention_days: int) -> dict[str, int]:
    """Delete inference-log rows, shadow comparisons and quarantined rows older than
    `retention_days`; how many rows went from each table."""
    deleted: dict[str, int] = {}
    with conn.transaction():
        for table, column in _TIME_COLUMNS.items():
            cursor = conn.execute(
                f"delete from serving.{table} where {column} < now() - make_interval(days => %s)",
                (retention_days,),
            )
            deleted[table] = cursor.rowcount
    return deleted
