"""An MLflow outage during a deployment is an outage, not an answer: the run fails (and is
retried) instead of taking the first-deployment path or recording a final rollback. The outage
is a tracking URI on a port nothing listens on; the records live in the session's real Postgres
and the versions in its real MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deploy_support import fresh_name, passed
from twin.deploy.checks import Thresholds
from twin.deploy.deployment import Deployment
from twin.deploy.registry import RegistryUnavailable, alias_version, version_info
from twin.deploy.serving_control import TritonServing
from twin.domain.models import CHAMPION, VersionTag
from twin.settings import Settings
from twin.stack.process import free_port
from twin.store import deployments as store

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_with_champion(scratch_warehouse: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A registered model whose version 1 is champion and version 2 awaits deployment; serving
    points at a repository of its own and a Triton that is not there (nothing is served)."""
    from twin.store.tracking import tracking_client

    settings = scratch_warehouse.model_copy(
        update={
            "registered_model": fresh_name(),
            "triton_model_repository": tmp_path / "models",
            "triton_http_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    client = tracking_client(settings)
    name = settings.registered_model
    client.create_registered_model(name)
    run = client.create_run(client.create_experiment(f"{name}-experiment"))
    for _ in range(2):
        client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=passed()
        )
    client.set_registered_model_alias(name, CHAMPION, "1")
    yield settings


def unreachable_client(monkeypatch: pytest.MonkeyPatch):
    """An MlflowClient for a port nothing listens on, failing at once instead of retrying."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = f"http://127.0.0.1:{free_port()}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def deployment(settings: Settings, client, conn) -> Deployment:
    return Deployment(
        client,
        conn,
        TritonServing(settings),
        settings.registered_model,
        2,
        Thresholds(),
    )


def test_mlflow_outage_is_neither_no_champion_nor_a_missing_version(
    registry_with_champion: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    settings = registry_with_champion
    name = settings.registered_model
    real = tracking_client(settings)
    down = unreachable_client(monkeypatch)
    # absent things still read as absent on a reachable MLflow
    assert alias_version(real, name, "no-such-alias") is None
    assert alias_version(real, fresh_name(), CHAMPION) is None

    with warehouse_connection(settings, autocommit=True) as conn:
        # starting while MLflow is down: no record planned as a first deployment
        with pytest.raises(RegistryUnavailable, match="MLflow could not answer"):
            deployment(settings, down, conn).start()
        store.ensure_schema(conn)
        assert store.get_deployment(conn, name, 2) is None

        planned = deployment(settings, real, conn).start()
        assert planned.state == "planned" and planned.previous_champion == "1"

        # MLflow goes down before preflight: the step fails, nothing is decided
        with pytest.raises(RegistryUnavailable):
            version_info(down, name, 2)
        with pytest.raises(RegistryUnavailable):
            deployment(settings, down, conn).preflight(require_approval=False)
        after = store.get_deployment(conn, name, 2)

    assert after.state == "planned" and after.decision is None
    assert VersionTag.DEPLOYMENT not in real.get_model_version(name, "2").tags
    assert alias_version(real, name, CHAMPION) == "1"
