"""A run for an author the warehouse holds nothing of fails, naming the stage and the author,
instead of succeeding with an empty dataset, index or model (the marts hold the sample author)."""

from __future__ import annotations

import pytest

from tests.integration.test_feature_pipeline import sample_marts
from twin.errors import NoAuthorDocuments
from twin.settings import endpoint_to_connection

pytestmark = pytest.mark.integration

NOBODY = "Nobody Written Yet"


@pytest.fixture(scope="module")
def marts_env(stack_settings):
    """Sample marts in a scratch warehouse; the tasks read it from the environment."""
    with sample_marts(stack_settings, "dagnone") as settings, pytest.MonkeyPatch.context() as mp:
        dsn = settings.require("warehouse_dsn")
        mp.setenv("WAREHOUSE_DSN", dsn)
        mp.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", endpoint_to_connection("warehouse_dsn", dsn))
        yield settings


def test_datasets_for_an_author_without_documents_fail_naming_them(marts_env, monkeypatch) -> None:
    from twin.datasets.tasks import build_dataset_task

    with pytest.raises(NoAuthorDocuments, match=rf"twin_datasets: author '{NOBODY}' has no"):
        build_dataset_task({"author": NOBODY})
    monkeypatch.setenv("TWIN_AUTHOR", NOBODY)  # a run that leaves the Param empty
    with pytest.raises(NoAuthorDocuments, match=rf"twin_datasets: author '{NOBODY}' has no"):
        build_dataset_task({"author": None})


def test_features_for_a_configured_author_without_documents_fail(marts_env, monkeypatch) -> None:
    from twin.features.tasks import plan_pieces_task

    monkeypatch.setenv("TWIN_AUTHOR", NOBODY)
    with pytest.raises(NoAuthorDocuments, match=rf"twin_features: author '{NOBODY}' has no"):
        plan_pieces_task()


def test_training_latest_of_an_author_without_datasets_fails_naming_them(marts_env) -> None:
    from twin.training.tasks import plan_training

    settings = marts_env.model_copy(update={"author": NOBODY})
    with pytest.raises(NoAuthorDocuments, match=rf"twin_training: author '{NOBODY}' has no"):
        plan_training({"dataset_version": "latest", "author": None}, settings)
    with pytest.raises(NoAuthorDocuments, match="author 'Someone Else' has no dataset version"):
        plan_training({"dataset_version": "latest", "author": "Someone Else"}, settings)
