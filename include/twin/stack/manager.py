"""`twin stack up | down | status`: the embedded stack of real services under `.twin/`.

`up` is idempotent: a healthy service is reused, a dead one restarted (its stale PID file
dropped), and when a service cannot start, every service this call started is stopped again and
the error names the service with the tail of its log. Ports are chosen free (or taken from
`TWIN_PORT_<NAME>`) and kept in `.twin/stack.json` so restarts keep their endpoints, with the
executor mode (`--executor celery` adds a Redis broker and Celery workers, `twin.stack.celery`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from twin.stack.airflow import AirflowService
from twin.stack.base import Service, ServiceError, StackContext
from twin.stack.celery import CeleryWorkerService, RedisService, worker_specs
from twin.stack.files import private_dir, write_private
from twin.stack.mongo import MongoService
from twin.stack.postgres import PostgresService
from twin.stack.process import free_port, group_members, port_is_free
from twin.stack.s3 import S3_MEMORY_NOTE, S3Service
from twin.stack.servers import MlflowService, SampleSiteService, TritonService
from twin.stack.serving_restore import restore_serving

CORE_SERVICES = ("postgres", "mongo", "triton", "mlflow")
OPTIONAL_SERVICES = ("sample", "airflow", "redis", "s3")  # shown by `status`, started on request
ALL_SERVICES = (*CORE_SERVICES, *OPTIONAL_SERVICES)
# Services whose processes may start together; a wave starts once the previous one is healthy.
START_WAVES = (
    ("postgres", "mongo", "sample", "redis", "s3"),
    ("triton", "mlflow"),  # Triton after S3: it may read its models there
    ("airflow",),
)
START_TIMEOUT_S = {
    "postgres": 60,
    "mongo": 60,
    "triton": 90,
    "sample": 60,
    "mlflow": 120,
    "airflow": 240,
    "redis": 30,
    "s3": 60,
}
WORKER_START_TIMEOUT_S = 180  # each Celery worker of `--executor celery`
EXECUTORS = ("local", "celery")


@dataclass(frozen=True)
class Executor:
    """How the embedded Airflow runs tasks: `local` (LocalExecutor, the default) or `celery`
    (a Redis broker and `workers` general plus `training_workers` training-only Celery workers)."""

    kind: str = "local"
    workers: int = 2
    training_workers: int = 1

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise StackError(f"unknown executor {self.kind!r}; known: {', '.join(EXECUTORS)}")
        if self.kind == "celery" and (self.workers < 1 or self.training_workers < 0):
            raise StackError("--executor celery needs --workers >= 1 and --training-workers >= 0")


class StackError(RuntimeError):
    """The stack could not be brought up; the message names the service and shows its log."""


@dataclass(frozen=True)
class ServiceStatus:
    """One service as `twin stack status` shows it."""

    name: str
    state: str  # healthy | unhealthy | stopped
    url: str
    pid: int | None
    detail: str
    memory_mb: float = 0.0

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass(frozen=True)
class UpResult:
    """What `up` did: which services it started and which it found healthy and reused."""

    started: list[str]
    reused: list[str]
    statuses: list[ServiceStatus]
    notes: tuple[str, ...] = ()


class Stack:
    """The embedded stack rooted at `home` (default `.twin/`)."""

    def __init__(
        self,
        home: Path,
        services: tuple[str, ...] = CORE_SERVICES,
        executor: Executor | None = None,
    ) -> None:
        unknown = set(services) - set(ALL_SERVICES)
        if unknown:
            raise StackError(
                f"unknown service(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(ALL_SERVICES)}"
            )
        self.home = home.resolve()
        self.wanted = services
        self.state_path = self.home / "stack.json"
        self.env_path = self.home / "stack.env"
        self.ctx = StackContext(home=self.home, ports=self._load_ports())
        # None: the mode the stack was last brought up in (`down` and `status` see its workers).
        self.executor = executor or self._load_executor()
        postgres = PostgresService(self.ctx)
        redis = RedisService(self.ctx)
        celery = self.executor.kind == "celery"
        airflow = AirflowService(self.ctx, postgres, broker=redis if celery else None)
        self.services: dict[str, Service] = {
            "postgres": postgres,
            "mongo": MongoService(self.ctx),
            "triton": TritonService(self.ctx),
            "mlflow": MlflowService(self.ctx, postgres),
            "airflow": airflow,
            "sample": SampleSiteService(self.ctx),
            "redis": redis,
            "s3": S3Service(self.ctx),
        }
        self.workers: tuple[str, ...] = ()
        if celery:
            specs = worker_specs(self.executor.workers, self.executor.training_workers)
            for spec in specs:
                self.services[spec.name] = CeleryWorkerService(self.ctx, spec, redis, airflow.env)
            self.workers = tuple(spec.name for spec in specs)
            if "airflow" in self.wanted:  # workers share objects through S3, not a folder
                self.wanted = (*dict.fromkeys((*self.wanted, "redis", "s3")), *self.workers)
        s3 = self.services["s3"]
        if "s3" in self.wanted or s3.process.running():  # Triton reads its models there too
            self.services["triton"].on_s3(s3)

    # ports and state -------------------------------------------------------------------------
    def _load_ports(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.state_path.read_text())["ports"].items()}
        except (OSError, ValueError, KeyError):
            return {}

    def _load_executor(self) -> Executor:
        try:
            return Executor(**json.loads(self.state_path.read_text())["executor"])
        except (OSError, ValueError, KeyError, TypeError):
            return Executor()

    def _save_state(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        state = {
            "ports": self.ctx.ports,
            "executor": asdict(self.executor),
            "triton_repository": self.services["triton"].repository_url,
        }
        self.state_path.write_text(json.dumps(state, indent=2) + "\n")

    def _assign_ports(self, service: Service) -> None:
        """Give a service that is about to start its configured, previous or a free port."""
        for key in service.ports:
            configured = os.environ.get(f"TWIN_PORT_{key.upper()}")
            if configured:
                self.ctx.ports[key] = int(configured)
            elif key not in self.ctx.ports or not port_is_free(self.ctx.ports[key]):
                self.ctx.ports[key] = free_port()

    # status ----------------------------------------------------------------------------------
    def service_status(self, name: str, timeout_s: float = 3.0) -> ServiceStatus:
        """Probe one service: is its process ours and alive, and does it answer its protocol?"""
        service = self.services[name]
        proc = service.process.running()
        url = service.url if all(k in self.ctx.ports for k in service.ports) else "-"
        if proc is None:
            dead = service.process.died()
            if dead is not None:
                return ServiceStatus(
                    name,
                    "unhealthy",
                    url,
                    None,
                    f"process {dead.pid} died; `twin stack up` restarts it",
                )
            detail = "no process" if name in CORE_SERVICES else "not started"
            return ServiceStatus(name, "stopped", url, None, detail)
        memory = group_memory_mb(proc)
        try:
            detail = service.check(timeout_s)
        except Exception as err:
            return ServiceStatus(name, "unhealthy", url, proc.pid, short_error(err), memory)
        return ServiceStatus(name, "healthy", url, proc.pid, detail, memory)

    def status(self) -> list[ServiceStatus]:
        """Every service of the stack (Airflow's UI included), as `twin stack status` shows."""
        names = [n for n in ALL_SERVICES if n in self.wanted or n in OPTIONAL_SERVICES]
        return [self.service_status(n) for n in (*names, *self.workers)]

    # up --------------------------------------------------------------------------------------
    def up(self, progress: Callable[[str], None] = lambda _msg: None) -> UpResult:
        """Bring every wanted service to healthy; start only what is not already healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        # PID files and raw payloads (whole data exports) are the owner's only.
        for sub in ("run", "objects"):
            private_dir(self.home / sub)
        for service in self.services.values():
            service.process.rewrite_record()
        self._refuse_executor_switch()
        started: list[str] = []
        reused: list[str] = []
        try:
            for wave in (*START_WAVES, self.workers):
                names = [n for n in wave if n in self.wanted]
                pending = []
                for name in names:
                    if self.service_status(name).healthy:
                        reused.append(name)
                        continue
                    self._start(name, progress)
                    started.append(name)
                    pending.append(name)
                if "postgres" in self.wanted and "postgres" in names:
                    self._wait_healthy("postgres", progress)
                    self.services["postgres"].after_start()
                if "postgres" in self.wanted and wave == START_WAVES[0]:
                    # Airflow's metadata DB is needed by dag.test() even without the UI.
                    airflow = self.services["airflow"]
                    if "airflow" not in self.ctx.ports:
                        self._assign_ports(airflow)
                    progress("preparing Airflow metadata DB")
                    airflow.prepare()
                for name in pending:
                    self._wait_healthy(name, progress)
                    if name == "airflow":
                        progress("unpausing the pipeline DAGs once Airflow has parsed them")
                        self.services[name].after_start()
                    if name == "s3":  # the object store's bucket (moto starts empty)
                        self.services[name].after_start()
                if "postgres" in self.wanted and wave == START_WAVES[1]:
                    progress("applying airflow_settings.yaml to Airflow's metadata DB")
                    self._apply_airflow_settings()
            self._save_state()
            self.write_env()
        except ServiceError as err:
            self._stop_started(started)
            raise StackError(str(err)) from err
        except BaseException:
            self._stop_started(started)
            raise
        notes = tuple(self.services["airflow"].notes) if "airflow" in self.wanted else ()
        if "s3" in started:  # its objects live in memory: say so each time it starts empty
            notes += (S3_MEMORY_NOTE,)
        if "triton" in started:  # a fresh Triton serves nothing: bring back what was served
            progress("restoring what the deployments serve")
            notes += (restore_serving(self.home, self.endpoints()),)
        return UpResult(started, reused, self.status(), notes)

    def _refuse_executor_switch(self) -> None:
        """A running Airflow keeps its executor: switching needs `twin stack down` first."""
        recorded = self._load_executor()
        airflow = self.services["airflow"]
        if recorded.kind != self.executor.kind and airflow.process.running() is not None:
            raise StackError(
                f"Airflow is running with the {recorded.kind} executor; run `twin stack down` "
                f"before `twin stack up --executor {self.executor.kind}`"
            )
        triton = self.services["triton"]
        try:
            serving = json.loads(self.state_path.read_text())["triton_repository"]
        except (OSError, ValueError, KeyError):
            serving = triton.repository_url
        if serving != triton.repository_url and triton.process.running() is not None:
            raise StackError(
                f"Triton is running on the model repository {serving}; run `twin stack down` "
                f"before starting it on {triton.repository_url}"
            )

    def _stop_started(self, started: list[str]) -> None:
        for name in reversed(started):
            self.services[name].process.stop()

    def _apply_airflow_settings(self) -> None:
        """Connections, variables and pools of airflow_settings.yaml into the metadata DB."""
        self._save_state()
        airflow = self.services["airflow"]
        assert isinstance(airflow, AirflowService)
        airflow.apply_settings(self.endpoints())

    def _start(self, name: str, progress: Callable[[str], None]) -> None:
        service = self.services[name]
        if service.process.record() is not None:
            progress(f"restarting {name} (its process is gone or does not answer)")
            service.process.stop()
        self._assign_ports(service)
        progress(f"starting {name}")
        try:
            service.prepare()
            service.process.start(
                service.command(), service.env(), cwd=service.dir, user=service.run_as()
            )
        except (OSError, ServiceError) as err:
            raise StackError(
                f"{name} failed to start: {err}\n--- {service.process.log_path} "
                f"(last lines) ---\n{service.process.log_tail()}"
            ) from err
        self._save_state()

    def _wait_healthy(self, name: str, progress: Callable[[str], None]) -> None:
        service = self.services[name]
        timeout_s = START_TIMEOUT_S.get(name, WORKER_START_TIMEOUT_S)
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if service.process.running() is None:
                raise StackError(
                    f"{name} exited during start-up\n--- {service.process.log_path} "
                    f"(last lines) ---\n{service.process.log_tail()}"
                )
            try:
                service.check(2.0)
                progress(f"{name} is healthy at {service.url}")
                return
            except Exception as err:
                last_error = short_error(err)
                time.sleep(0.5)
        raise StackError(
            f"{name} did not become healthy within {timeout_s} s "
            f"({last_error})\n--- {service.process.log_path} (last lines) ---\n"
            f"{service.process.log_tail()}"
        )

    # down ------------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every service this stack started (whole process groups); return their names."""
        stopped = []
        for name in reversed(self.services):
            if self.services[name].process.stop():
                stopped.append(name)
        return stopped

    # stack.env -------------------------------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        """Every `stack.env` entry: endpoints of the wanted services and where state lives."""
        entries = {
            "TWIN_HOME": str(self.home),
            "OBJECT_STORE_URL": (self.home / "objects").as_uri(),
        }
        names = [*self.wanted, "airflow"]  # Airflow's home and metadata DB are always prepared
        if self.services["sample"].process.running():
            names.append("sample")
        if self.services["s3"].process.running():  # the object store stays where objects are
            names.append("s3")
        for name in dict.fromkeys(names):
            service = self.services[name]
            if all(k in self.ctx.ports for k in service.ports):
                entries.update(service.endpoints())
        return entries

    def write_env(self) -> Path:
        """Write `.twin/stack.env` (shell-sourceable KEY=VALUE, mode 0600: it holds passwords)."""
        lines = [
            "# Written by `twin stack up`: endpoints of the embedded stack.",
            "# Load into a shell with: set -a; . .twin/stack.env; set +a",
        ]
        lines += [f"{key}={shlex.quote(value)}" for key, value in self.endpoints().items()]
        return write_private(self.env_path, "\n".join(lines) + "\n")


def group_memory_mb(proc) -> float:
    """Memory of a server and every process of its group, in MiB.

    Proportional set size (shared pages split between the processes sharing them), so forked
    workers are not counted twice; resident size where PSS cannot be read.
    """
    total = 0
    for member in group_members(proc):
        with contextlib.suppress(psutil.Error):
            try:
                total += member.memory_full_info().pss
            except (AttributeError, psutil.AccessDenied):
                total += member.memory_info().rss
    return round(total / 2**20, 1)


def short_error(err: BaseException) -> str:
    """One line describing an exception, for status tables."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {text}"[:160]


def as_dicts(statuses: list[ServiceStatus]) -> list[dict]:
    return [asdict(s) | {"healthy": s.healthy} for s in statuses]
