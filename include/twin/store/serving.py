"""The `serving` schema: one row per twin_rag request, one per mirrored (shadow) request.

`serving.inference_log` holds what monitoring needs and nothing more: the query text (users' own
questions; answers are PII-redacted before they are stored), the retrieved chunk ids and scores,
the model version, token counts and per-step latencies. `serving.shadow_comparisons` holds the
champion's and the shadow's answers to the same prompt, for the deployment stage to judge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

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
    token_overlap double precision
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
)
_JSON_COLUMNS = {"retrieved", "latency_ms"}


def ensure_serving_schema(conn: psycopg.Connection) -> None:
    """Create the `serving` schema and its tables when missing (idempotent)."""
    with conn.transaction():
        conn.execute(SERVING_DDL)


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
        for row in rows
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
