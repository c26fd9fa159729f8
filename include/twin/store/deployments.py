"""Deployment and monitoring records in Postgres: `serving.deployments`, `serving.alerts` and
`serving.monitor_runs`.

A deployment is one row per (registered model, version): its state, every figure its checks
measured, the thresholds they were held to, and the history of its transitions. State changes are
compare-and-set (`advance` names the state it expects to leave), so two runs of the same
deployment cannot both move it. Alerts are unique per (monitor, check, window end): re-running a
monitor window does not raise the same alert twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

DDL = """
create schema if not exists serving;
create table if not exists serving.deployments (
    deployment_id     text primary key,
    registered_model  text not null,
    version           text not null,
    state             text not null,
    previous_champion text,
    decision          text check (decision in ('promote', 'rollback')),
    reason            text,
    figures           jsonb not null default '{}'::jsonb,
    thresholds        jsonb not null default '{}'::jsonb,
    history           jsonb not null default '[]'::jsonb,
    attempts          integer not null default 1,
    run_id            text,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    decided_at        timestamptz,
    unique (registered_model, version)
);
create index if not exists deployments_recent on serving.deployments (updated_at desc);
-- the LLM backend the version was served by (python, tensorrtllm); added after the first release
alter table serving.deployments add column if not exists backend text;
create table if not exists serving.alerts (
    alert_id      bigserial primary key,
    monitor       text not null,
    check_name    text not null,
    severity      text not null,
    message       text not null,
    figures       jsonb not null default '{}'::jsonb,
    window_start  timestamptz not null,
    window_end    timestamptz not null,
    raised_at     timestamptz not null default now(),
    unique (monitor, check_name, window_end)
);
create table if not exists serving.monitor_runs (
    monitor       text not null,
    window_end    timestamptz not null,
    window_start  timestamptz not null,
    figures       jsonb not null default '{}'::jsonb,
    counters      jsonb not null default '{}'::jsonb,
    alerts        integer not null default 0,
    ran_at        timestamptz not null default now(),
    primary key (monitor, window_end)
);
"""

# First key of the advisory locks that serialise deployments (the second is the model's hash).
LOCK_NAMESPACE = 0x7477  # "tw"
COLUMNS = (
    "deployment_id, registered_model, version, state, previous_champion, decision, reason, "
    "figures, thresholds, history, attempts, run_id, created_at, updated_at, decided_at, backend"
)


@dataclass
class DeploymentRecord:
    """One row of `serving.deployments`."""

    deployment_id: str
    registered_model: str
    version: str
    state: str
    previous_champion: str | None = None
    decision: str | None = None
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    run_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    decided_at: datetime | None = None
    backend: str | None = None  # the LLM backend that served the version (python, tensorrtllm)


def deployment_id(registered_model: str, version: str | int) -> str:
    return f"{registered_model}/{version}"


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the tables (idempotent; one creator at a time: `create index` takes a share lock
    that two concurrent `alter table`s would each wait to upgrade, a deadlock)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('twin.serving.deployments'))")
        conn.execute(DDL)


class LockTimeout(RuntimeError):
    """The deployment lock stayed taken for longer than the caller would wait."""


@contextmanager
def deployment_lock(
    conn: psycopg.Connection, registered_model: str, timeout_s: float = 120.0
) -> Iterator[None]:
    """Hold the Postgres advisory lock of `registered_model`'s deployments (one holder at a time,
    across processes and hosts); released on exit, or by Postgres when the session ends. A holder
    that keeps it longer than `timeout_s` makes this raise LockTimeout, never wait forever."""
    key = (LOCK_NAMESPACE, registered_model)
    conn.execute("select set_config('lock_timeout', %s, false)", (f"{int(timeout_s * 1000)}ms",))
    try:
        conn.execute("select pg_advisory_lock(%s, hashtext(%s))", key)
    except psycopg.errors.LockNotAvailable:
        raise LockTimeout(
            f"another run has held the deployment lock of {registered_model} for over "
            f"{timeout_s:.0f} s"
        ) from None
    finally:
        conn.execute("select set_config('lock_timeout', '0', false)")
    try:
        yield
    finally:
        # a connection that broke meanwhile lost the lock with its session
        with suppress(psycopg.Error):
            conn.execute("select pg_advisory_unlock(%s, hashtext(%s))", key)


def _record(row: dict[str, Any] | None) -> DeploymentRecord | None:
    return DeploymentRecord(**row) if row else None


def get_deployment(
    conn: psycopg.Connection, registered_model: str, version: str | int
) -> DeploymentRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"select {COLUMNS} from serving.deployments where deployment_id = %s",
            (deployment_id(registered_model, version),),
        )
        return _record(cur.fetchone())


def plan_deployment(
    conn: psycopg.Connection,
    registered_model: str,
    version: str | int,
    *,
    state: str,
    previous_champion: str | None,
    thresholds: dict[str, Any],
    run_id: str | None,
    now: datetime,
    backend: str | None = None,
) -> tuple[DeploymentRecord, bool]:
    """The deployment row for a version, created in `state` when it did not exist; returns the
    row and whether this call created it."""
    entry = [{"state": state, "at": now.isoformat(), "note": "planned"}]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "insert into serving.deployments (deployment_id, registered_model, version, state, "
            "previous_champion, thresholds, history, run_id, created_at, updated_at, backend) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"on conflict (deployment_id) do nothing returning {COLUMNS}",
            (
                deployment_id(registered_model, version),
                registered_model,
                str(version),
                state,
                previous_champion,
                Jsonb(thresholds),
                Jsonb(entry),
                run_id,
                now,
                now,
                backend,
            ),
        )
        created = cur.fetchone()
    if created:
        return DeploymentRecord(**created), True
    existing = get_deployment(conn, registered_model, version)
    assert existing is not None
    return existing, False


# Columns a restart may set afresh (`advance(reset=...)`); resetting `decision` to None also
# clears `decided_at`, resetting `figures` replaces them instead of merging.
RESETTABLE = frozenset(
    {"attempts", "run_id", "previous_champion", "thresholds", "reason", "figures", "decision"}
)


def advance(
    conn: psycopg.Connection,
    record: DeploymentRecord,
    expected: Sequence[str],
    state: str,
    *,
    now: datetime,
    note: str = "",
    figures: dict[str, Any] | None = None,
    decision: str | None = None,
    reason: str | None = None,
    reset: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> DeploymentRecord | None:
    """Move a deployment to `state` if it is still in one of `expected` (compare-and-set);
    merges `figures` into the stored ones; `details` are kept in the history entry. Returns the
    new row, or None when another run moved it first."""
    reset = dict(reset or {})
    unknown = set(reset) - RESETTABLE
    if unknown:
        raise ValueError(f"column(s) {sorted(unknown)} cannot be reset")
    entry = [{"state": state, "at": now.isoformat(), "note": note, **(details or {})}]
    sets = ["state = %s", "updated_at = %s", "history = history || %s"]
    params: list[Any] = [state, now, Jsonb(entry)]
    if "figures" not in reset:
        sets.append("figures = figures || %s")
        params.append(Jsonb(figures or {}))
    if decision is not None:
        sets += ["decision = %s", "decided_at = %s"]
        params += [decision, now]
    elif "decision" in reset and reset["decision"] is None:
        sets.append("decided_at = null")
    if reason is not None:
        sets.append("reason = %s")
        params.append(reason)
    for column, value in reset.items():
        sets.append(f"{column} = %s")
        params.append(Jsonb(value) if isinstance(value, dict) else value)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"update serving.deployments set {', '.join(sets)} "
            f"where deployment_id = %s and state = any(%s) returning {COLUMNS}",
            (*params, record.deployment_id, list(expected)),
        )
        return _record(cur.fetchone())


def list_deployments(
    conn: psycopg.Connection, registered_model: str | None = None, limit: int = 20
) -> list[DeploymentRecord]:
    """The most recently updated deployments first."""
    where, params = (
        ("where registered_model = %s", [registered_model])
        if registered_model
        else (
            "",
            [],
        )
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"select {COLUMNS} from serving.deployments {where} "
            "order by updated_at desc, deployment_id limit %s",
            (*params, limit),
        )
        return [DeploymentRecord(**row) for row in cur.fetchall()]


@dataclass(frozen=True)
class Alert:
    """A monitor finding that crossed its threshold."""

    monitor: str
    check_name: str
    severity: str
    message: str
    figures: dict[str, Any]
    window_start: datetime
    window_end: datetime


def record_alert(conn: psycopg.Connection, alert: Alert) -> bool:
    """Store an alert; False when the same (monitor, check, window) was already recorded."""
    cur = conn.execute(
        "insert into serving.alerts (monitor, check_name, severity, message, figures, "
        "window_start, window_end) values (%s, %s, %s, %s, %s, %s, %s) "
        "on conflict (monitor, check_name, window_end) do nothing",
        (
            alert.monitor,
            alert.check_name,
            alert.severity,
            alert.message,
            Jsonb(alert.figures),
            alert.window_start,
            alert.window_end,
        ),
    )
    return cur.rowcount == 1


def list_alerts(conn: psycopg.Connection, monitor: str | None = None) -> list[dict[str, Any]]:
    where, params = ("where monitor = %s", [monitor]) if monitor else ("", [])
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select monitor, check_name, severity, message, figures, window_start, window_end, "
            f"raised_at from serving.alerts {where} order by raised_at desc, alert_id desc",
            params,
        )
        return cur.fetchall()


def save_monitor_run(
    conn: psycopg.Connection,
    monitor: str,
    window_start: datetime,
    window_end: datetime,
    figures: dict[str, Any],
    counters: dict[str, float],
    alerts: int,
) -> None:
    """Record one monitor window (replaces an earlier record of the same window)."""
    conn.execute(
        "insert into serving.monitor_runs (monitor, window_end, window_start, figures, counters, "
        "alerts) values (%s, %s, %s, %s, %s, %s) on conflict (monitor, window_end) do update "
        "set figures = excluded.figures, counters = excluded.counters, alerts = excluded.alerts, "
        "ran_at = now()",
        (monitor, window_end, window_start, Jsonb(figures), Jsonb(counters), alerts),
    )


def previous_counters(
    conn: psycopg.Connection, monitor: str, before: datetime
) -> dict[str, float] | None:
    """The counters recorded by the latest window of `monitor` that ended before `before`."""
    row = conn.execute(
        "select counters from serving.monitor_runs where monitor = %s and window_end < %s "
        "order by window_end desc limit 1",
        (monitor, before),
    ).fetchone()
    return dict(row[0]) if row else None


def dumps(figures: dict[str, Any]) -> str:
    """Figures as compact JSON (for logs and tables)."""
    return json.dumps(figures, sort_keys=True, default=str, separators=(",", ":"))
