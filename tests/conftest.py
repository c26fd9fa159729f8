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


# Severe lines of the scratch stack's service logs are kept in this file under the session's
# base temp folder when the session had failures: the scratch home (logs included) is gone by
# the time pytest prints its summary.
FAILURE_LOG_FILE = "stack-errors.txt"
SEVERE_MARKERS = (
    "E1",
    "E0",
    "ERROR",
    "Traceback",
    "unhealthy",
    "not healthy",
    "Signal (11)",
    "Signal (6)",
    "Killed",
)
# Noise every CPU-only Triton start prints.
LOG_NOISE = ("CudaDriverHelper", "pinned memory", "CUDA driver")


def severe_log_lines(logs: Path, per_file: int = 25) -> list[str]:
    """The last `per_file` error-looking lines of each service log under `logs`, prefixed with
    the log's name."""
    kept: list[str] = []
    for log in sorted(logs.glob("*.log")):
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if any(m in line for m in SEVERE_MARKERS) and not any(n in line for n in LOG_NOISE)
        ]
        kept += [f"{log.name}: {line[:400]}" for line in lines[-per_file:]]
    return kept


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    kept = config._tmp_path_factory.getbasetemp() / FAILURE_LOG_FILE
    if kept.exists():
        terminalreporter.section("error lines of the scratch stack's service logs")
        for line in kept.read_text().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def stack_settings(request: pytest.FixtureRequest) -> Iterator[Settings]:
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
        if request.session.testsfailed and (home / "logs").is_dir():
            base = request.config._tmp_path_factory.getbasetemp()
            (base / FAILURE_LOG_FILE).write_text("\n".join(severe_log_lines(home / "logs")))
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
