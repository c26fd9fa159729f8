"""The services of the embedded stack: how each one is prepared, started and checked.

Each service is a real server process started from a package installed in the project's virtual
environment; nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from twin.settings import endpoint_to_connection
from twin.stack.process import ManagedProcess

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be prepared, started or reached."""


@dataclass
class StackContext:
    """What every service needs to know about the stack it belongs to."""

    home: Path
    ports: dict[str, int]
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def secret(self, name: str) -> str:
        """A generated secret kept in the stack's home (mode 0600), created on first use."""
        path = self.home / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def base_env(self) -> dict[str, str]:
        """The environment servers start with: ours, with the venv's bin first on PATH."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env


def package_dir(package: str) -> Path:
    """Where an installed package lives, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"the {package} package is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created (no login, no home) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def make_traversable(path: Path) -> None:
    """Let other users traverse `path` and its parents (o+x), as a server user must."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


class Service(ABC):
    """One server of the embedded stack."""

    name: str
    ports: tuple[str, ...]

    def __init__(self, ctx: StackContext) -> None:
        self.ctx = ctx
        self.dir = ctx.home / self.name
        self.process = ManagedProcess(self.name, ctx.run_dir, ctx.log_dir / f"{self.name}.log")

    def port(self, key: str | None = None) -> int:
        return self.ctx.ports[key or self.ports[0]]

    def prepare(self) -> None:
        """Create folders and one-time state (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def env(self) -> dict[str, str]:
        return self.ctx.base_env()

    def run_as(self) -> str | None:
        """The system user the server runs as (None: the current user)."""
        return None

    @abstractmethod
    def check(self, timeout_s: float) -> str:
        """Reach the server through its own protocol; return a short detail or raise."""

    def after_start(self) -> None:  # noqa: B027 - optional hook, most services need none
        """One-time work once the server answers (databases, extensions)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where people and clients reach the service."""

    def endpoints(self) -> dict[str, str]:
        """The `stack.env` entries this service contributes."""
        return {}


class PostgresService(Service):
    """PostgreSQL 16 + pgvector from the pgserver package, on loopback TCP and a Unix socket."""

    name = "postgres"
    ports = ("postgres",)
    databases = ("twin", "mlflow", "airflow")
    system_user = "pgserver"

    @property
    def bin_dir(self) -> Path:
        # Located, not imported: importing pgserver has side effects we do not need.
        return package_dir("pgserver") / "pginstall" / "bin"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "socket"

    @property
    def password(self) -> str:
        return self.ctx.secret("postgres_password")

    def run_as(self) -> str | None:
        return self.system_user if os.geteuid() == 0 else None

    def prepare(self) -> None:
        super().prepare()
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o777)
        if (self.data_dir / "PG_VERSION").exists():
            return
        user = self.run_as()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        pwfile = self.dir / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        if user is not None:
            # Postgres refuses to run as root: it runs as a dedicated system user, as pgserver does.
            entry = ensure_system_user(user)
            make_traversable(self.data_dir.parent)
            make_traversable(self.bin_dir)
            for path in (self.data_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(stat.S_IRUSR)
        try:
            subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    f"--pwfile={pwfile}",
                ],
                check=True,
                capture_output=True,
                text=True,
                user=user,
                timeout=120,
            )
        except subprocess.CalledProcessError as err:
            raise ServiceError(f"postgres: initdb failed:\n{err.stderr[-2000:]}") from err
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port()),
            "-k",
            str(self.socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "logging_collector=off",
        ]

    def dsn(self, database: str = "twin", driver: str = "postgresql") -> str:
        return (
            f"{driver}://postgres:{quote(self.password, safe='')}@{LOOPBACK}:{self.port()}"
            f"/{database}"
        )

    def check(self, timeout_s: float) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), connect_timeout=max(1, int(timeout_s))) as conn:
            version = conn.execute("show server_version").fetchone()[0]
        return f"PostgreSQL {version}"

    def after_start(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute("select datname from pg_database")}
            for database in self.databases:
                if database not in existing:
                    conn.execute(f'create database "{database}"')
        with psycopg.connect(self.dsn("twin"), autocommit=True) as conn:
            conn.execute("create extension if not exists vector")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port()}/twin"

    def endpoints(self) -> dict[str, str]:
        dsn = self.dsn("twin")
        return {
            "WAREHOUSE_DSN": dsn,
            "AIRFLOW_CONN_WAREHOUSE_POSTGRES": endpoint_to_connection("warehouse_dsn", dsn),
        }


class MongoService(Service):
    """A MongoDB wire-protocol server (secantusdb), run as its own process on loopback."""

    name = "mongo"
    ports = ("mongo",)

    def prepare(self) -> None:
        super().prepare()
        (self.dir / "data").mkdir(exist_ok=True)
        # An explicit (empty) config turns off the server's config-file auto-discovery.
        (self.dir / "secantusd.toml").touch()

    def command(self) -> list[str]:
        return [
            str(self.ctx.bin_dir / "secantusd-py"),
            "--config",
            str(self.dir / "secantusd.toml"),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port()),
            "--storage-path",
            str(self.dir / "data"),
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ]

    def check(self, timeout_s: float) -> str:
        from pymongo import MongoClient

        ms = int(timeout_s * 1000)
        with MongoClient(self.uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms) as client:
            info = client.server_info()
        return f"MongoDB protocol {info.get('version', '?')}"

    @property
    def uri(self) -> str:
        return f"mongodb://{LOOPBACK}:{self.port()}/?directConnection=true"

    @property
    def url(self) -> str:
        return self.uri

    def endpoints(self) -> dict[str, str]:
        return {
            "MONGO_URI": self.uri,
            "AIRFLOW_CONN_MONGO_DEFAULT": endpoint_to_connection(
                "mongo_uri", self.uri, directConnection=True
            ),
        }


class MlflowService(Service):
    """The MLflow tracking server: Postgres backend store, artifacts served from a local folder."""

    name = "mlflow"
    ports = ("mlflow",)

    def __init__(self, ctx: StackContext, postgres: PostgresService) -> None:
        super().__init__(ctx)
        self.postgres = postgres

    def command(self) -> list[str]:
        artifacts = self.dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return [
            str(self.ctx.bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            self.postgres.dsn("mlflow", "postgresql+psycopg2"),
            "--artifacts-destination",
            artifacts.as_uri(),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port()),
            "--workers",
            "1",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        return env

    def check(self, timeout_s: float) -> str:
        resp = httpx.get(
            f"{self.url}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout_s,
        )
        resp.raise_for_status()
        return "tracking API answers"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port()}"

    def endpoints(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "AIRFLOW_CONN_MLFLOW_DEFAULT": endpoint_to_connection("mlflow_tracking_uri", self.url),
        }


class TritonService(Service):
    """NVIDIA Triton Inference Server (from nvidia-pytriton) with the Python backend, on CPU."""

    name = "triton"
    ports = ("triton_http", "triton_grpc", "triton_metrics")

    @property
    def package_dir(self) -> Path:
        return package_dir("pytriton") / "tritonserver"

    @property
    def repository(self) -> Path:
        return self.dir / "models"

    @property
    def backends(self) -> Path:
        return self.dir / "backends"

    def prepare(self) -> None:
        super().prepare()
        self.repository.mkdir(exist_ok=True)
        python_backend = self.backends / "python"
        python_backend.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = self.package_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
        sources = [*sorted((self.package_dir / "backends" / "python").iterdir()), stub]
        for source in sources:
            target = python_backend / source.name
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                shutil.copy2(source, target)

    def command(self) -> list[str]:
        return [
            str(self.package_dir / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.backends}",
            "--model-control-mode=explicit",
            f"--http-address={LOOPBACK}",
            f"--grpc-address={LOOPBACK}",
            f"--metrics-address={LOOPBACK}",
            f"--http-port={self.port('triton_http')}",
            f"--grpc-port={self.port('triton_grpc')}",
            f"--metrics-port={self.port('triton_metrics')}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=false",
            "--log-verbose=0",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        # This interpreter's libpython must come first, or the stub loads the system's and fails.
        libdirs = [
            sysconfig.get_config_var("LIBDIR"),
            str(self.package_dir.parents[1] / "nvidia_pytriton.libs"),
        ]
        if env.get("LD_LIBRARY_PATH"):
            libdirs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libdirs)
        return env

    def check(self, timeout_s: float) -> str:
        resp = httpx.get(f"{self.url}/v2/health/ready", timeout=timeout_s)
        resp.raise_for_status()
        meta = httpx.get(f"{self.url}/v2", timeout=timeout_s).json()
        return f"Triton {meta.get('version', '?')}"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port('triton_http')}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.port('triton_grpc')}"

    def endpoints(self) -> dict[str, str]:
        return {
            "TRITON_HTTP_URL": self.url,
            "TRITON_GRPC_URL": self.grpc_url,
            "TRITON_METRICS_URL": f"http://{LOOPBACK}:{self.port('triton_metrics')}/metrics",
            "TRITON_MODEL_REPOSITORY": str(self.repository),
            "AIRFLOW_CONN_TRITON_DEFAULT": endpoint_to_connection(
                "triton_http_url", self.url, grpc_url=self.grpc_url
            ),
        }


class SampleSiteService(Service):
    """The bundled sample author's web presence, served on loopback (the demo's outside world)."""

    name = "sample"
    ports = ("sample",)

    @property
    def site_dir(self) -> Path:
        return self.dir / "site"

    def command(self) -> list[str]:
        # The server builds the site into `site_dir` on first start, then serves it as it is,
        # so an edited page stays edited across restarts.
        return [
            sys.executable,
            "-m",
            "sample_author",
            "serve",
            "--site-dir",
            str(self.site_dir),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port()),
            "--quiet",
        ]

    def check(self, timeout_s: float) -> str:
        resp = httpx.get(f"{self.url}/robots.txt", timeout=timeout_s)
        resp.raise_for_status()
        return "sample author's site answers"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port()}"

    def endpoints(self) -> dict[str, str]:
        from sample_author.links import sample_prefixes

        return {
            "SAMPLE_SITE_URL": self.url,
            # The crawler refuses loopback addresses unless allowed: the demo allows its own site.
            "CRAWL_ALLOW_PRIVATE_HOSTS": json.dumps([f"{LOOPBACK}"]),
            "CRAWL_PLATFORM_PREFIXES": json.dumps(sample_prefixes(self.url)),
        }
