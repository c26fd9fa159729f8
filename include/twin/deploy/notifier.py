"""The Airflow notifier of TwinOps: a JSON message to the alert webhook (task or DAG callbacks)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from twin.deploy.alerts import post_webhook


class WebhookNotifier(BaseNotifier):
    """Post a JSON message to a webhook, for example `on_failure_callback=WebhookNotifier(...)`.

    `url` defaults to `TWIN_ALERT_WEBHOOK_URL`; without one the message is only logged."""

    template_fields = ("message",)

    def __init__(self, message: str, url: str | None = None, severity: str = "critical") -> None:
        super().__init__()
        self.message = message
        self.url = url
        self.severity = severity

    def notify(self, context: Any) -> None:
        from twin.settings import load_settings

        url = self.url or load_settings().alert_webhook_url
        ti = context.get("ti") or context.get("task_instance")
        payload = {
            "source": "airflow",
            "severity": self.severity,
            "message": self.message,
            "dag_id": getattr(context.get("dag"), "dag_id", None),
            "task_id": getattr(ti, "task_id", None),
            "run_id": context.get("run_id"),
        }
        self.log.warning("notification: %s", self.message)
        if url:
            post_webhook(url, payload)
