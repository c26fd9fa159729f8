"""The HTTP servers of the embedded stack: MLflow tracking, Triton, the sample author's site."""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import ClassVar

import httpx

from twin.settings import endpoint_to_connection
from twin.stack.base import LOOPBACK, Service, StackContext, package_dir
from twin.stack.postgres import PostgresService


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
