"""The tracking server through the project's client: log, register, alias, load back."""

import uuid

import mlflow
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel

from twin.settings import Settings
from twin.store.tracking import tracking_client

pytestmark = pytest.mark.integration


class Shout(PythonModel):
    def predict(self, context, model_input, params=None):
        return [text.upper() + "!" for text in model_input["text"]]


def test_logged_model_is_registered_aliased_and_loads_back(stack_settings: Settings) -> None:
    uri = stack_settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = f"probe-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(f"{name}-experiment")

    with mlflow.start_run() as run:
        mlflow.log_params({"lora_r": 8, "base": "tiny"})
        mlflow.log_metric("eval_loss", 1.25)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Shout(), registered_model_name=name
        )
    client = tracking_client(stack_settings)
    version = info.registered_model_version
    client.set_registered_model_alias(name, "challenger", version)
    client.set_model_version_tag(name, version, "review", "pending")

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    got = client.get_model_version_by_alias(name, "challenger")

    assert loaded.predict(pd.DataFrame({"text": ["ship it"]})) == ["SHIP IT!"]
    assert got.run_id == run.info.run_id and got.tags["review"] == "pending"
    assert client.get_run(run.info.run_id).data.metrics["eval_loss"] == 1.25
    client.delete_registered_model(name)
