"""Session fixtures: the embedded stack on free ports (or the services named by the environment).

When `MONGO_URI`, `WAREHOUSE_DSN`, `MLFLOW_TRACKING_URI`, `TRITON_HTTP_URL`/`TRITON_GRPC_URL` are
set, those services are used as they are; every other one is started in a scratch stack home and
stopped again when the session ends. Airflow reads its configuration when first imported, so no
test imports Airflow before `stack_settings` has put the stack's environment in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.settings import Settings, load_settings

# Environment variable that, when set, replaces each embedded service.
EXTERNAL = {
    "mongo": "MONGO_URI",
    "postgres": "WAREHOUSE_DSN",
    "mlflow": "MLFLOW_TRACKING_URI",
    "triton": "TRITON_HTTP_URL",
}
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Variables that point a process at a running stack (the session's); a scratch stack's processes
# must not see them, nor any connection or crawl setting exported for another stack.
STACK_KEYS = frozenset(
    {
        "TWIN_HOME",
        "OBJECT_STORE_URL",
        "MONGO_URI",
        "MONGO_DATABASE",
        "WAREHOUSE_DSN",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "TRITON_HTTP_URL",
        "TRITON_GRPC_URL",
        "TRITON_METRICS_URL",
        "TRITON_MODEL_REPOSITORY",
        "TRITON_REPOSITORY_KEY",
        "AIRFLOW_HOME",
        "AIRFLOW_UI_URL",
        "SAMPLE_SITE_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
)


def is_stack_key(key: str) -> bool:
    """Whether an environment variable belongs to a running stack (see `STACK_KEYS`)."""
    return key in STACK_KEYS or key.startswith(("AIRFLOW_CONN_", "CRAWL_"))


def scratch_home(prefix: str) -> Path:
    """A short scratch folder (Unix socket paths must stay short) that others may traverse."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings pointing at a running stack; the services this session started are stopped."""
    from twin.stack import Stack

    wanted = tuple(name for name, key in EXTERNAL.items() if not os.environ.get(key))
    if "mlflow" in wanted or not os.environ.get("AIRFLOW_HOME"):
        wanted = tuple(dict.fromkeys(("postgres", *wanted)))  # MLflow and Airflow store there
    if not wanted:
        yield load_settings()
        return
    home = scratch_home("twin-test-")
    stack = Stack(home, wanted)
    try:
        stack.up()
        for key, value in stack.endpoints().items():
            os.environ.setdefault(key, value)
        yield load_settings(home)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


class SampleSite:
    """A freshly built sample author site, served on loopback, with its manifest."""

    def __init__(self, home: Path, server, manifest) -> None:
        self.home = home
        self.server = server
        self.manifest = manifest

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def settings(self, base: Settings, **overrides) -> Settings:
        """`base` pointed at this site, with a Mongo database and object store of its own."""
        import uuid

        from sample_author.links import sample_prefixes

        update = {
            "mongo_database": f"t_{uuid.uuid4().hex[:10]}",
            "object_store_url": (self.home / f"objects-{uuid.uuid4().hex[:6]}").as_uri(),
            "sample_site_url": self.base_url,
            "crawl_allow_private_hosts": [f"127.0.0.1:{self.server.port}"],
            "crawl_platform_prefixes": sample_prefixes(self.base_url),
            "crawl_per_host_rate": 40.0,
            **overrides,
        }
        return base.model_copy(update=update)


@pytest.fixture(scope="module")
def sample_site() -> Iterator[SampleSite]:
    """The sample author's site, built and served for one test module (edits stay local)."""
    from sample_author.server import SampleServer
    from sample_author.site import build_site

    home = scratch_home("twin-sample-")
    manifest = build_site(home / "site")
    with SampleServer(home / "site", burst_limit=200) as server:
        yield SampleSite(home, server, manifest)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def scratch_warehouse(stack_settings: Settings) -> Iterator[Settings]:
    """Settings pointing at a fresh Postgres database (with pgvector) and a fresh Mongo database;
    both dropped afterwards."""
    from twin.store.mongo import mongo_client
    from twin.store.warehouse import scratch_database

    with scratch_database(stack_settings.require("warehouse_dsn"), "t") as dsn:
        name = dsn.rsplit("/", 1)[1]
        settings = stack_settings.model_copy(update={"warehouse_dsn": dsn, "mongo_database": name})
        try:
            yield settings
        finally:
            with mongo_client(settings) as client:
                client.drop_database(name)
