"""The MLflow URLs a deploy task publishes for the Airflow UI's extra links
(plugins/twin_mlflow_links.py reads them under these XCom keys)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
MODEL_VERSION_KEY = "twin_mlflow_model_version_url"
RUN_KEY = "twin_mlflow_run_url"


def mlflow_urls(client: Any, tracking_uri: str, name: str, version: int | str) -> dict[str, str]:
    """The UI pages of a registered version and of the run that produced it."""
    from twin.deploy.registry import model_version_url, run_url

    urls = {MODEL_VERSION_KEY: model_version_url(tracking_uri, name, version)}
    mv = client.get_model_version(name, str(version))
    if mv.run_id:
        run = client.get_run(mv.run_id)
        urls[RUN_KEY] = run_url(tracking_uri, run.info.experiment_id, mv.run_id)
    return urls


def push_links(urls: dict[str, str]) -> None:
    """Push the URLs as XComs of the running task (does nothing outside a task)."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
    except Exception:  # not inside an Airflow task (a test, the CLI)
        return
    for key, url in urls.items():
        ti.xcom_push(key=key, value=url)
