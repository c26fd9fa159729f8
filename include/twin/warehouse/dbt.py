"""Run the warehouse's dbt project (`dbt/`) against the configured Postgres.

dbt runs as a subprocess of the `dbt` executable beside this interpreter: dbt keeps global state
per process, so in-process runs are not safe to overlap, and a subprocess also isolates its
logging and environment. Results come from the `run_results.json` of that one invocation.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from twin.settings import Settings
from twin.warehouse.manifest import DBT_PROJECT_DIR

log = logging.getLogger(__name__)

PROFILE_NAME = "twin"
TARGET_NAME = "dev"
# Statuses dbt reports for a node that did not do its job.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error", "skipped"})
OUTPUT_TAIL_CHARS = 4000


@dataclass(frozen=True)
class DbtNodeResult:
    """One model, test, seed or snapshot as dbt reported it."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str | None = None
    failures: int | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when the node errored, a test failed, or it was skipped for an upstream failure."""
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class DbtRunResult:
    """What one dbt invocation did: overall success and a result per node it ran."""

    args: tuple[str, ...]
    success: bool
    returncode: int
    nodes: tuple[DbtNodeResult, ...] = ()
    seconds: float = 0.0
    output_tail: str = ""
    target_path: Path | None = None

    @property
    def failed_nodes(self) -> tuple[DbtNodeResult, ...]:
        return tuple(n for n in self.nodes if n.failed)

    @property
    def warned_nodes(self) -> tuple[DbtNodeResult, ...]:
        return tuple(n for n in self.nodes if n.status == "warn")

    def node(self, name: str) -> DbtNodeResult:
        """The result of the node called `name` (KeyError if it did not run)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def summary(self) -> dict[str, int]:
        """How many nodes ended in each status."""
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.status] = counts.get(n.status, 0) + 1
        return counts


class DbtFailed(RuntimeError):
    """A dbt invocation failed; `result` holds every node's outcome."""

    def __init__(self, result: DbtRunResult) -> None:
        self.result = result
        super().__init__(failure_report(result))


def failure_report(result: DbtRunResult) -> str:
    """A readable account of what failed: one line per failing model or test."""
    command = " ".join(result.args)
    lines = [f"dbt {command} failed (exit code {result.returncode})"]
    for n in result.failed_nodes:
        detail = n.message or ""
        if n.failures:
            detail = f"{n.failures} failing row(s)" + (f": {detail}" if detail else "")
        suffix = f": {detail}" if detail else ""
        lines.append(f"  - {n.resource_type} {n.name}: {n.status}{suffix}")
    if not result.failed_nodes and result.output_tail:
        lines.append(result.output_tail.strip())
    return "\n".join(lines)


def dbt_env(settings: Settings) -> dict[str, str]:
    """The TWIN_DBT_* variables `dbt/profiles.yml` reads, parsed from the warehouse DSN.

    A Unix-socket DSN (`postgresql://user@/db?host=/socket/dir`) gives the socket directory as
    the host, which libpq accepts in place of a host name.
    """
    from twin.store.warehouse import parse_dsn

    params = parse_dsn(settings.require("warehouse_dsn"))
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    user = params.get("user") or "postgres"
    password = params.get("password", "")
    dbname = params.get("dbname") or "twin"
    env = {
        "TWIN_DBT_HOST": host,
        "TWIN_DBT_PORT": port,
        "TWIN_DBT_USER": user,
        "TWIN_DBT_PASSWORD": password,
        "TWIN_DBT_DBNAME": dbname,
    }
    if "sslmode" in params:
        env["TWIN_DBT_SSLMODE"] = params["sslmode"]
    return env


def default_target_path(settings: Settings) -> Path:
    """Where dbt writes its artifacts: `<stack home>/dbt/target`."""
    return Path(settings.home) / "dbt" / "target"


def dbt_executable() -> str:
    """The `dbt` command of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if not found:
        raise RuntimeError("the dbt command is not installed in this environment")
    return found


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file`: one dbt invocation per target path at a time."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_dbt(
    args: list[str],
    settings: Settings,
    *,
    target_path: Path | None = None,
    check: bool = True,
    timeout_s: float | None = None,
) -> DbtRunResult:
    """Run `dbt ARGS` on the project in `dbt/` against `settings`' warehouse.

    Returns success and a result per node (name, status, message, failures). Raises `DbtFailed`
    listing the failing models and tests when dbt fails and `check` is true. Artifacts
    (manifest, run_results, docs catalog) go to `target_path`, by default
    `<stack home>/dbt/target`; invocations sharing a target path run one after another.
    """
    target = Path(target_path or default_target_path(settings)).resolve()
    env = {
        **os.environ,
        **dbt_env(settings),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(target.parent / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PRINTER_WIDTH": "100",
        "DO_NOT_TRACK": "1",
    }
    command = [dbt_executable(), *args]
    began = time.monotonic()
    with exclusive(target.parent / f".{target.name}.lock"):
        target.mkdir(parents=True, exist_ok=True)
        # Never read a previous invocation's results (`source freshness` writes sources.json).
        results_files = (target / "run_results.json", target / "sources.json")
        for stale in results_files:
            stale.unlink(missing_ok=True)
        log.info("dbt %s (target %s)", " ".join(args), target)
        proc = subprocess.run(
            command,
            cwd=DBT_PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        nodes = next((read_run_results(f) for f in results_files if f.exists()), ())
    output = (proc.stdout or "") + (proc.stderr or "")
    result = DbtRunResult(
        args=tuple(args),
        success=proc.returncode == 0,
        returncode=proc.returncode,
        nodes=nodes,
        seconds=round(time.monotonic() - began, 3),
        output_tail=output[-OUTPUT_TAIL_CHARS:],
        target_path=target,
    )
    log.info("dbt %s: %s in %.1f s", " ".join(args), result.summary() or "done", result.seconds)
    if check and not result.success:
        raise DbtFailed(result)
    return result


def read_run_results(path: Path) -> tuple[DbtNodeResult, ...]:
    """Node results from a `run_results.json` or `sources.json` (none when there is no file)."""
    if not path.exists():
        return ()
    data = json.loads(path.read_text())
    nodes: list[DbtNodeResult] = []
    for item in data.get("results", []):
        unique_id = item.get("unique_id", "")
        parts = unique_id.split(".")
        nodes.append(
            DbtNodeResult(
                unique_id=unique_id,
                name=node_name(parts),
                resource_type=parts[0],
                status=str(item.get("status", "")),
                message=item.get("message") or item.get("error"),
                failures=item.get("failures"),
                seconds=round(float(item.get("execution_time") or 0.0), 3),
            )
        )
    return tuple(nodes)


def node_name(parts: list[str]) -> str:
    """A node's short name from its unique id's parts (`source.p.raw.documents`: raw.documents)."""
    if parts[0] == "source":
        return ".".join(parts[2:])
    if parts[0] == "test" and len(parts) > 2:
        return parts[2]
    return parts[-1]
