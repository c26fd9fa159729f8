"""Operational health of every service, checked through the project's own clients.

Each check does real work against its service (a pgvector query, a Mongo write and read back, an
MLflow API call, Triton readiness and repository index, an object round trip) and never raises:
it returns a `CheckResult`, so one dead service is reported beside the healthy ones.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from twin.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one service check."""

    service: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


class UnhealthyServices(RuntimeError):
    """One or more services failed their check; the message is the readable report."""


def check_postgres(settings: Settings) -> str:
    from twin.store.warehouse import warehouse_connection

    with warehouse_connection(settings) as conn:
        version = conn.execute("select extversion from pg_extension where extname = 'vector'")
        row = version.fetchone()
        distance = conn.execute("select '[1,0,0]'::vector <=> '[0,1,0]'::vector").fetchone()[0]
    if row is None:
        raise RuntimeError("extension `vector` is not installed in the warehouse")
    if abs(distance - 1.0) > 1e-6:
        raise RuntimeError(f"pgvector cosine distance of orthogonal vectors was {distance}, not 1")
    return f"pgvector {row[0]}: cosine distance query ok"


def check_mongo(settings: Settings) -> str:
    from twin.store.mongo import mongo_client, twin_database

    with mongo_client(settings) as client:
        client.admin.command("ping")
        probes = twin_database(client, settings)["healthchecks"]
        token = uuid.uuid4().hex
        probes.insert_one({"_id": token, "at": datetime.now(UTC)})
        found = probes.find_one({"_id": token})
        probes.delete_one({"_id": token})
    if found is None:
        raise RuntimeError("a document written to twin.healthchecks could not be read back")
    return "ping, write and read back ok"


def check_mlflow(settings: Settings) -> str:
    from twin.store.tracking import tracking_client

    client = tracking_client(settings)
    experiments = client.search_experiments(max_results=100)
    models = client.search_registered_models(max_results=100)
    return f"{len(experiments)} experiment(s), {len(models)} registered model(s)"


def check_triton(settings: Settings) -> str:
    from twin.serving.client import http_client

    client = http_client(settings)
    try:
        if not client.is_server_live() or not client.is_server_ready():
            raise RuntimeError("server is not live and ready")
        index = client.get_model_repository_index()
        meta = client.get_server_metadata()
    finally:
        client.close()
    ready = sum(1 for model in index if model.get("state") == "READY")
    return f"Triton {meta['version']} ready; repository: {len(index)} model(s), {ready} loaded"


def check_object_store(settings: Settings) -> str:
    from twin.store.object_store import object_store

    store = object_store(settings)
    key = f"healthchecks/{uuid.uuid4().hex}.txt"
    payload = f"twinops healthcheck {datetime.now(UTC).isoformat()}".encode()
    store.put(key, payload, "text/plain")
    try:
        if store.get(key) != payload:
            raise RuntimeError(f"object {key} read back different bytes")
    finally:
        store.delete(key)
    return f"write, read back, delete ok at {store.url}"


CHECKS: dict[str, Callable[[Settings], str]] = {
    "postgres": check_postgres,
    "mongo": check_mongo,
    "mlflow": check_mlflow,
    "triton": check_triton,
    "object_store": check_object_store,
}


def check_service(service: str, settings: Settings | None = None) -> CheckResult:
    """Run one service's check; a failure is returned as a result naming the cause."""
    if service not in CHECKS:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(CHECKS)}")
    settings = settings or load_settings()
    began = time.monotonic()
    try:
        detail, ok = CHECKS[service](settings), True
    except Exception as err:  # reported, never raised: the other checks still run
        detail, ok = f"{type(err).__name__}: {err}".splitlines()[0][:300], False
    return CheckResult(service, ok, detail, round(time.monotonic() - began, 3))


def check_all(settings: Settings | None = None) -> list[CheckResult]:
    """Every service's check, in a fixed order."""
    settings = settings or load_settings()
    return [check_service(name, settings) for name in CHECKS]


def render_report(results: list[CheckResult]) -> str:
    """A fixed-width table a person can read in a task log."""
    width = max(len(r.service) for r in results)
    lines = [f"{'service':<{width}}  status  seconds  detail"]
    for r in results:
        status = "ok" if r.ok else "FAILED"
        lines.append(f"{r.service:<{width}}  {status:<6}  {r.seconds:>7.2f}  {r.detail}")
    failed = [r.service for r in results if not r.ok]
    lines.append(
        f"{len(results) - len(failed)}/{len(results)} services healthy"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)


def summarise_health(results: list[dict]) -> str:
    """The DAG's last step: log the report; raise `UnhealthyServices` if any check failed."""
    checks = [CheckResult(**r) for r in results]
    report = render_report(checks)
    log.info("service health:\n%s", report)
    if not all(c.ok for c in checks):
        raise UnhealthyServices("service health check failed\n" + report)
    return report


def check_service_report(service: str) -> dict:
    """One check as a plain dict (what a DAG task returns through XCom)."""
    return check_service(service).as_dict()
