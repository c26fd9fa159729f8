"""Alert delivery: a row in `serving.alerts`, a log line, and a JSON POST to a webhook.

`deliver` is what the monitor task calls for each alert it raises (`twin.deploy.notifier` holds
the Airflow notifier for task and DAG callbacks). An alert already recorded for the same window is
neither posted nor logged again, so a retried monitor run does not page twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from twin.store.deployments import Alert

log = logging.getLogger(__name__)


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "source": alert.monitor,
        "check": alert.check_name,
        "severity": alert.severity,
        "message": alert.message,
        "figures": alert.figures,
        "window_start": alert.window_start.isoformat(),
        "window_end": alert.window_end.isoformat(),
    }


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 10.0) -> int:
    """POST `payload` as JSON; returns the HTTP status (raises on a transport error or >= 400)."""
    response = httpx.post(url, json=payload, timeout=timeout_s)
    response.raise_for_status()
    return response.status_code


def deliver(
    conn: Any, alerts: Sequence[Alert], webhook_url: str | None, timeout_s: float = 10.0
) -> dict[str, int]:
    """Record, log and post each new alert; a webhook failure is logged, never raised (the row
    is the durable record), and one alert's failure does not stop the others."""
    from twin.store.deployments import dumps, record_alert

    counts = {"new": 0, "repeated": 0, "posted": 0, "post_failed": 0}
    for alert in alerts:
        if not record_alert(conn, alert):
            counts["repeated"] += 1
            continue
        counts["new"] += 1
        log.warning(
            "ALERT %s/%s [%s] %s %s",
            alert.monitor,
            alert.check_name,
            alert.severity,
            alert.message,
            dumps(alert.figures),
        )
        if webhook_url:
            try:
                post_webhook(webhook_url, alert_payload(alert), timeout_s)
                counts["posted"] += 1
            except httpx.HTTPError as err:
                counts["post_failed"] += 1
                log.error("alert webhook failed for %s: %s", alert.check_name, err)
    return counts
