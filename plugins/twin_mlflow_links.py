"""Airflow UI links from twin_deploy's tasks to the MLflow model version and its training run.

The deploy tasks push the two URLs as XComs (`twin.deploy.links`); these links read them back, so
a task that pushed nothing shows the links disabled.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.serialization.definitions.operatorlink import XComOperatorLink

MODEL_VERSION_KEY = "twin_mlflow_model_version_url"
RUN_KEY = "twin_mlflow_run_url"


class TwinMlflowLinks(AirflowPlugin):
    name = "twin_mlflow_links"
    global_operator_extra_links: ClassVar[list] = [
        XComOperatorLink(name="MLflow model version", xcom_key=MODEL_VERSION_KEY),
        XComOperatorLink(name="MLflow training run", xcom_key=RUN_KEY),
    ]
