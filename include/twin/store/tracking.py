"""MLflow tracking and registry client, built from settings."""

from __future__ import annotations

from twin.settings import Settings


def tracking_client(settings: Settings):
    """An `MlflowClient` for `MLFLOW_TRACKING_URI` (or the `mlflow_default` connection)."""
    from mlflow.tracking import MlflowClient

    uri = settings.require("mlflow_tracking_uri")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
