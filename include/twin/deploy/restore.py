"""Bring serving back after Triton (re)starts: Triton runs with explicit model control, so a
fresh server serves nothing until asked.

What is served comes from the deployment state: the champion (MLflow's alias, or the last
promoted record while MLflow cannot answer) and, when a deployment is past loading, its
challenger, mirrored by twin_rag again when it was in shadow. A repository served without any
deployment (`twin serve up`) is brought back as its routing file says. The stack runs
`python -m twin.deploy.restore` after starting Triton; running it on a serving Triton changes
nothing.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from twin.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedPlan:
    """The versions to serve and where that was read."""

    champion: int | None
    challenger: int | None
    shadow: bool
    source: str

    @property
    def versions(self) -> list[int]:
        return sorted({v for v in (self.champion, self.challenger) if v is not None})


def repository_model(settings: Settings) -> str | None:
    """The registered model this Triton repository serves (from its versions' `version.json`),
    or None when it never served one."""
    from twin.serving.repository import (
        RepositoryError,
        read_routing,
        served_versions,
        version_record,
    )

    candidates = [read_routing(settings).get("champion"), *served_versions(settings)]
    for version in (v for v in candidates if v is not None):
        try:
            return version_record(settings, int(version)).registered_model
        except RepositoryError:
            continue
    return None


def served_plan(
    client: Any, conn: Any, name: str, routing: dict[str, Any], served: list[int]
) -> ServedPlan:
    """What the deployment records of `name` say is served; `routing` (twin_rag's routing file)
    when there is no record. A deployment still loading keeps its version when the repository
    already lists it (`served`)."""
    from twin.deploy.registry import RegistryUnavailable, alias_version
    from twin.deploy.state import DeploymentState as S
    from twin.domain.models import CHAMPION
    from twin.store.deployments import ensure_schema, list_deployments

    ensure_schema(conn)
    records = list_deployments(conn, name, 1000)
    if not records:
        shadow = routing.get("shadow")
        return ServedPlan(routing.get("champion"), shadow, shadow is not None, "routing file")
    try:
        champion = alias_version(client, name, CHAMPION)
        source = "MLflow's champion alias and serving.deployments"
    except RegistryUnavailable as err:
        promoted = [r for r in records if r.state == S.PROMOTED]
        champion = max(promoted, key=lambda r: r.decided_at).version if promoted else None
        source = f"serving.deployments (MLflow unavailable: {err})"
    loaded = [
        r
        for r in records  # newest first
        if r.version != champion
        and (
            r.state in (S.LOADED, S.SHADOWING, S.CHECKED)
            or (r.state == S.PREFLIGHT_OK and int(r.version) in served)
        )
    ]
    challenger = loaded[0] if loaded else None
    return ServedPlan(
        None if champion is None else int(champion),
        None if challenger is None else int(challenger.version),
        challenger is not None
        and challenger.previous_champion is not None
        and challenger.state in (S.SHADOWING, S.CHECKED),
        source,
    )


def apply_plan(settings: Settings, plan: ServedPlan) -> None:
    """Load the plan's versions (of twin_llm and twin_llm_stream, their configuration kept as
    written when it lists exactly them; or each version's TensorRT-LLM pipeline), route twin_rag,
    and load it."""
    from twin.serving.backend_names import llm_tensors
    from twin.serving.configs import LLM_MODEL, RAG_MODEL, STREAM_MODEL
    from twin.serving.repository import (
        CONFIG_FILE,
        load_rag,
        load_versions,
        read_routing,
        served_versions,
        set_default_version,
        set_shadow,
    )
    from twin.store.model_repository import repository_store

    store = repository_store(settings)
    configured = store.exists(f"{LLM_MODEL}/{CONFIG_FILE}")
    python_backend = llm_tensors(settings.serving_llm_backend).versioned
    if python_backend and configured and set(served_versions(settings)) == set(plan.versions):
        _load(settings, LLM_MODEL, STREAM_MODEL)
    else:  # (TensorRT-LLM: each version's own pipeline, loaded by load_versions)
        from twin.serving.repository import write_llm_configs

        write_llm_configs(settings, [])  # exactly the plan's versions, none left over
        load_versions(settings, plan.versions)
    routing = read_routing(settings)
    if plan.champion is not None and routing.get("champion") != plan.champion:
        set_default_version(settings, plan.champion)
    shadow = plan.challenger if plan.shadow else None
    if routing.get("shadow") != shadow:
        set_shadow(settings, shadow, routing.get("shadow_share"))
    if store.exists(f"{RAG_MODEL}/{CONFIG_FILE}"):
        _load(settings, RAG_MODEL)  # as installed, with the settings it was installed with
    elif plan.champion is not None:
        load_rag(settings)


def _load(settings: Settings, *names: str) -> None:
    from twin.serving.client import http_client

    client = http_client(settings, timeout_s=settings.serving_request_timeout_s)
    try:
        for name in names:
            client.load_model(name)
    finally:
        client.close()


def restore_serving(settings: Settings) -> str:
    """Serve again what the deployment state says is served; returns what was done."""
    from twin.serving.repository import read_routing, served_versions
    from twin.store.deployments import deployment_lock
    from twin.store.tracking import tracking_client
    from twin.store.warehouse import warehouse_connection

    name = repository_model(settings)
    routing = read_routing(settings)
    if name is None and routing.get("champion") is None:
        return "nothing was served from this repository: nothing to restore"
    settings = settings.model_copy(update={"registered_model": name or settings.registered_model})
    try:
        conn = warehouse_connection(settings, autocommit=True)
    except Exception as err:  # Postgres down: what the repository's routing file says
        log.warning("deployment records unavailable (%s); restoring the routing file", err)
        shadow = routing.get("shadow")
        plan = ServedPlan(routing.get("champion"), shadow, shadow is not None, "routing file")
        if plan.versions:
            apply_plan(settings, plan)
    else:
        # a deployment deciding meanwhile goes first, so its routing is not undone
        with conn, deployment_lock(conn, settings.registered_model):
            served = served_versions(settings)
            plan = served_plan(
                tracking_client(settings), conn, settings.registered_model, routing, served
            )
            if plan.versions:
                apply_plan(settings, plan)
    if not plan.versions:
        return f"no version to serve ({plan.source})"
    shadow = f", challenger {plan.challenger}" if plan.challenger else ""
    mirror = " (shadow)" if plan.shadow else ""
    return (
        f"serving {settings.registered_model} champion {plan.champion}{shadow}{mirror} "
        f"again, from {plan.source}"
    )


def main() -> int:
    try:
        print(restore_serving(load_settings()))
    except Exception as err:
        print(f"serving not restored: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
