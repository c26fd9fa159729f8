"""The HTTP servers of the embedded stack: MLflow tracking, Triton, the sample author's site."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import ClassVar

import httpx

from twin.settings import TRITON_REPOSITORY_KEY_HEADER, endpoint_to_connection
from twin.stack.base import LOOPBACK, Service, ServiceError, StackContext, package_dir
from twin.stack.files import private_dir, write_private
from twin.stack.postgres import PostgresService
from twin.stack.s3 import REPOSITORY_PREFIX, S3Service
from twin.store.model_repository import S3Repository, triton_s3_url

# The platform's MLflow user: the basic-auth app's admin, the only one who may write (runs,
# versions, the registry's review tags). Anonymous requests are refused.
MLFLOW_USER = "twin"
MLFLOW_PASSWORD_SECRET = "mlflow_password"  # its file in the stack's secrets folder
MLFLOW_AUTH_CONFIG = """\
# Written by `twin stack up`; edits are overwritten.
[mlflow]
default_permission = READ
database_uri = {database_uri}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# A verified credential is remembered (HMAC-keyed, in the one worker) for 10 minutes: without
# it every API call pays a password-hash check (about 0.45 s of CPU per request here).
auth_cache_ttl_seconds = 600
"""


class MlflowService(Service):
    """The MLflow tracking server: Postgres backend store, artifacts served from a local folder,
    MLflow's basic-auth app in front (users in a private SQLite file)."""

    name = "mlflow"
    ports = ("mlflow",)
    user = MLFLOW_USER

    def __init__(self, ctx: StackContext, postgres: PostgresService) -> None:
        super().__init__(ctx)
        self.postgres = postgres

    @property
    def password(self) -> str:
        """The platform user's password (a stack secret, 0600)."""
        return self.ctx.secret(MLFLOW_PASSWORD_SECRET)

    @property
    def auth_dir(self) -> Path:
        return self.dir / "auth"

    def prepare(self) -> None:
        super().prepare()
        private_dir(self.auth_dir)
        database_uri = f"sqlite:///{self.auth_dir / 'basic_auth.db'}"
        text = MLFLOW_AUTH_CONFIG.format(database_uri=database_uri, admin=self.user)
        write_private(self.auth_dir / "basic_auth.ini", text)

    def command(self) -> list[str]:
        artifacts = self.dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return [
            str(self.ctx.bin_dir / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
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
        # The backend store's DSN holds the `mlflow` role's password: the environment (readable by
        # its owner only), never the command line that `ps` shows everyone.
        env["MLFLOW_BACKEND_STORE_URI"] = self.postgres.dsn("mlflow", "postgresql+psycopg2")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.auth_dir / "basic_auth.ini")
        env["MLFLOW_AUTH_ADMIN_USERNAME"] = self.user
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.password
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = self.ctx.secret("mlflow_flask_secret_key")
        return env

    def check(self, timeout_s: float) -> str:
        resp = httpx.get(
            f"{self.url}/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout_s,
            auth=(self.user, self.password),
        )
        resp.raise_for_status()
        return "tracking API answers"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port()}"

    def endpoints(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.url,
            # MLflow's clients read their credentials from these (never from the URL, which
            # MLflow prints in run links).
            "MLFLOW_TRACKING_USERNAME": self.user,
            "MLFLOW_TRACKING_PASSWORD": self.password,
            "AIRFLOW_CONN_MLFLOW_DEFAULT": endpoint_to_connection("mlflow_tracking_uri", self.url),
        }


# Triton takes its restricted-API key on the command line only: the command carries this
# placeholder, and a preloaded shim (argv_secret.c) hands the server the real key before main().
KEY_PLACEHOLDER = "@TWIN_TRITON_REPOSITORY_KEY@"
ARGV_SHIM_SOURCE = Path(__file__).with_name("argv_secret.c")


class TritonService(Service):
    """NVIDIA Triton Inference Server (from nvidia-pytriton) with the Python backend, on CPU.

    The model-repository API (load, also with files, unload, index) answers only requests that
    carry the platform's key (`TRITON_REPOSITORY_KEY_HEADER`, a stack secret), over HTTP and
    gRPC; health, metadata and inference stay open to local clients.
    """

    name = "triton"
    ports = ("triton_http", "triton_grpc", "triton_metrics")
    s3: S3Service | None = None  # when set, the model repository is a prefix on its bucket

    def on_s3(self, s3: S3Service) -> None:
        """Read the model repository from the stack's S3 server (`s3://<bucket>/triton`), as
        Triton reads one from S3 in production, instead of a folder of this machine."""
        self.s3 = s3

    @property
    def repository_url(self) -> str:
        """`TRITON_MODEL_REPOSITORY`: the folder, or the S3 prefix."""
        if self.s3 is None:
            return str(self.repository)
        return f"s3://{self.s3.bucket}/{REPOSITORY_PREFIX}"

    @property
    def repository_key(self) -> str:
        return self.ctx.secret("triton_repository_key")

    @property
    def argv_shim(self) -> Path:
        digest = hashlib.sha256(ARGV_SHIM_SOURCE.read_bytes()).hexdigest()[:12]
        return self.dir / f"argv_secret-{digest}.so"

    def _build_argv_shim(self) -> None:
        if self.argv_shim.exists():
            return
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise ServiceError(
                "triton: a C compiler (cc) is needed to keep the repository key off the command "
                "line; install one (Debian: apt-get install gcc)"
            )
        tmp = self.argv_shim.with_suffix(".tmp")
        result = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(ARGV_SHIM_SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(f"triton: building {ARGV_SHIM_SOURCE.name} failed:\n{result.stderr}")
        tmp.replace(self.argv_shim)

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
        self._build_argv_shim()
        self.repository.mkdir(exist_ok=True)
        if self.s3 is not None:  # Triton takes an S3 prefix as a folder once it holds an object
            S3Repository(self.s3.bucket, REPOSITORY_PREFIX, self.s3.client())
        python_backend = self.backends / "python"
        python_backend.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = self.package_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
        # the backend's files (not the __pycache__ an install that compiles bytecode leaves)
        files = (self.package_dir / "backends" / "python").iterdir()
        sources = [*sorted(f for f in files if f.is_file()), stub]
        for source in sources:
            target = python_backend / source.name
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                shutil.copy2(source, target)

    def command(self) -> list[str]:
        return [
            str(self.package_dir / "bin" / "tritonserver"),
            f"--model-repository={self._triton_repository()}",
            f"--backend-directory={self.backends}",
            "--model-control-mode=explicit",
            f"--http-address={LOOPBACK}",
            f"--grpc-address={LOOPBACK}",
            f"--metrics-address={LOOPBACK}",
            f"--http-port={self.port('triton_http')}",
            f"--grpc-port={self.port('triton_grpc')}",
            f"--metrics-port={self.port('triton_metrics')}",
            f"--http-restricted-api=model-repository:{TRITON_REPOSITORY_KEY_HEADER}={KEY_PLACEHOLDER}",
            f"--grpc-restricted-protocol=model-repository:{TRITON_REPOSITORY_KEY_HEADER}="
            f"{KEY_PLACEHOLDER}",
            "--allow-gpu-metrics=false",
            # every config.pbtxt the platform writes is complete: no stub process started per
            # model load only to ask model.py to complete it
            "--disable-auto-complete-config",
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
        env["LD_PRELOAD"] = str(self.argv_shim)
        env["TWIN_ARGV_PLACEHOLDER"] = KEY_PLACEHOLDER
        env["TWIN_ARGV_SECRET"] = self.repository_key
        if self.s3 is not None:  # Triton's S3 client, and boto3 in twin_rag's stub
            s3 = self.s3.endpoints()
            env |= {k: v for k, v in s3.items() if k.startswith(("AWS_", "AIRFLOW_CONN_AWS"))}
            env["AWS_REGION"] = self.s3.region
        return env

    def _triton_repository(self) -> str:
        if self.s3 is None:
            return str(self.repository)
        return triton_s3_url(self.repository_url, self.s3.url)

    def check(self, timeout_s: float) -> str:
        resp = httpx.get(f"{self.url}/v2/health/ready", timeout=timeout_s)
        resp.raise_for_status()
        meta = httpx.get(f"{self.url}/v2", timeout=timeout_s).json()
        # The repository API must take the key (proving the server got it, not the placeholder).
        index = httpx.post(
            f"{self.url}/v2/repository/index",
            headers={TRITON_REPOSITORY_KEY_HEADER: self.repository_key},
            json={},
            timeout=timeout_s,
        )
        if index.status_code != 200:
            raise ServiceError(
                f"triton: the repository API refuses the platform's key ({index.status_code})"
            )
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
            "TRITON_MODEL_REPOSITORY": self.repository_url,
            "TRITON_REPOSITORY_KEY": self.repository_key,
            "AIRFLOW_CONN_TRITON_DEFAULT": endpoint_to_connection(
                "triton_http_url", self.url, grpc_url=self.grpc_url
            ),
        }


class SampleSiteService(Service):
    """The bundled sample author's web presence, served on loopback (the demo's outside world)."""

    name = "sample"
    ports = ("sample",)
    # the site's own description, per base URL (it only changes with the port)
    _prefixes: ClassVar[dict[str, dict[str, str]]] = {}

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
        from twin.stack.demo_site import describe_demo_site

        env = {
            "SAMPLE_SITE_URL": self.url,
            # The crawler refuses loopback addresses unless allowed: the demo allows its own site.
            "CRAWL_ALLOW_PRIVATE_HOSTS": json.dumps([f"{LOOPBACK}:{self.port()}"]),
        }
        url = self.url
        if self._prefixes.get(url) is None:
            try:  # the running site says which URL prefix belongs to which platform
                self._prefixes[url] = describe_demo_site(url, timeout_s=5.0).platform_prefixes
            except Exception:  # not up yet: `up` writes the endpoints again once it is healthy
                return env
        return {**env, "CRAWL_PLATFORM_PREFIXES": json.dumps(self._prefixes[url])}
