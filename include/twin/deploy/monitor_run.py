"""One twin_monitor run: read the window and its reference from `serving.inference_log`, scrape
Triton's metrics, evaluate, record the run and deliver the alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from twin.deploy.alerts import deliver
from twin.deploy.monitor import (
    MONITOR,
    LoggedRequest,
    MonitorThresholds,
    counter_rates,
    evaluate_window,
    triton_counters,
)
from twin.settings import Settings
from twin.store import deployments as store

log = logging.getLogger(__name__)
RAG_MODEL = "twin_rag"


def _top1(retrieved: Any) -> float | None:
    values = [
        float(p["similarity"])
        for p in retrieved or []
        if isinstance(p, dict) and p.get("similarity") is not None
    ]
    return max(values) if values else None


def load_requests(conn: Any, start: datetime, end: datetime) -> list[LoggedRequest]:
    """twin_rag's logged requests with `start <= logged_at < end` (empty when none, or when the
    inference log does not exist yet)."""
    exists = conn.execute("select to_regclass('serving.inference_log')").fetchone()[0]
    if exists is None:
        return []
    rows = conn.execute(
        "select query, status, grounded, retrieved, (latency_ms->>'total')::float "
        "from serving.inference_log where model = %s and logged_at >= %s and logged_at < %s",
        (RAG_MODEL, start, end),
    ).fetchall()
    return [
        LoggedRequest(query or "", status, grounded, _top1(retrieved), latency)
        for query, status, grounded, retrieved, latency in rows
    ]


def scrape_triton(settings: Settings) -> dict[str, float] | None:
    """twin_rag's cumulative counters from Triton's metrics endpoint (None when not configured or
    unreachable: the log-based checks still run)."""
    url = settings.triton_metrics_url
    if not url:
        return None
    try:
        response = httpx.get(url, timeout=settings.service_timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as err:
        log.warning("Triton metrics unreachable at %s: %s", url, err)
        return None
    return triton_counters(response.text, RAG_MODEL)


def parse_window_end(value: str | datetime | None) -> datetime:
    if value is None or value == "":
        now = datetime.now(UTC)
        return now.replace(minute=0, second=0, microsecond=0)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as err:
        raise ValueError(f"window_end must be an ISO timestamp, not {value!r}") from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def run_monitor(
    settings: Settings,
    window_end: str | datetime | None = None,
    *,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Evaluate the window ending at `window_end` (default: the last full hour); returns the
    figures and what happened to the alerts. Re-running a window raises no alert twice."""
    from twin.store.warehouse import warehouse_connection

    end = parse_window_end(window_end)
    start = end - timedelta(hours=settings.monitor_window_hours)
    ref_start = start - timedelta(days=settings.monitor_reference_days)
    if embed is None:
        from twin.store.embeddings import Embedder

        embedder = Embedder.from_settings(settings)
        embed = embedder.encode
    with warehouse_connection(settings, autocommit=True) as conn:
        store.ensure_schema(conn)
        current = load_requests(conn, start, end)
        reference = load_requests(conn, ref_start, start)
        counters = scrape_triton(settings)
        rates = None
        if counters is not None:
            rates = counter_rates(store.previous_counters(conn, MONITOR, end), counters)
        report = evaluate_window(
            current,
            reference,
            embed,
            MonitorThresholds.from_settings(settings),
            (start, end),
            rates,
        )
        delivered = deliver(conn, report.alerts, settings.alert_webhook_url)
        store.save_monitor_run(
            conn, MONITOR, start, end, report.figures, counters or {}, len(report.alerts)
        )
    log.info(
        "monitor window %s → %s: %d alert(s) %s",
        start,
        end,
        len(report.alerts),
        store.dumps(report.figures),
    )
    return {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "figures": report.figures,
        "alerts": [a.check_name for a in report.alerts],
        "delivered": delivered,
    }
