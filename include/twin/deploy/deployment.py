"""One deployment of a registered version, as resumable, idempotent steps over its record in
`serving.deployments` (see `twin.deploy.state` for the states).

Each step reads the record, does nothing when the deployment has already passed it, acts, and
moves the record on with a compare-and-set. The order inside a step keeps MLflow (the source of
truth), Triton and the record in agreement when the step fails halfway: the challenger alias is set
before loading and removed only after unloading; the champion alias moves only after Triton's
default has switched. `reconcile` repairs whatever a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from twin.deploy import registry
from twin.deploy.checks import (
    CheckReport,
    ShadowPair,
    Thresholds,
    evaluate_shadow,
    first_deployment_report,
)
from twin.deploy.serving_control import ServingControl
from twin.deploy.state import FINAL, IN_FLIGHT, DeploymentState, reached
from twin.domain.models import CHALLENGER, CHAMPION
from twin.store import deployments as store
from twin.store.deployments import DeploymentRecord

log = logging.getLogger(__name__)
S = DeploymentState


class DeploymentError(RuntimeError):
    """A step that cannot go on (the record says where the deployment stands)."""


@dataclass
class Deployment:
    """The parts one deployment works with: MLflow client, warehouse connection, serving."""

    client: Any
    conn: Any
    serving: ServingControl
    registered_model: str
    version: int
    thresholds: Thresholds
    run_id: str | None = None
    drain_s: float = 2.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def record(self) -> DeploymentRecord:
        row = store.get_deployment(self.conn, self.registered_model, self.version)
        if row is None:
            raise DeploymentError(f"no deployment of {self.registered_model}/{self.version}")
        return row

    def _advance(self, row: DeploymentRecord, expected: Sequence[str], state: str, **kw: Any):
        moved = store.advance(self.conn, row, expected, state, now=self.clock(), **kw)
        if moved is None:
            current = self.record().state
            raise DeploymentError(
                f"deployment {row.deployment_id} moved to {current!r} by another run "
                f"(expected one of {list(expected)})"
            )
        log.info("deployment %s: %s → %s", row.deployment_id, row.state, state)
        return moved

    # steps --------------------------------------------------------------------------------

    def start(self) -> DeploymentRecord:
        """Create the record (planned), restart a failed one, or return a running/decided one."""
        store.ensure_schema(self.conn)
        champion = registry.alias_version(self.client, self.registered_model, CHAMPION)
        row, created = store.plan_deployment(
            self.conn,
            self.registered_model,
            self.version,
            state=S.PLANNED,
            previous_champion=champion,
            thresholds=self.thresholds.model_dump(),
            run_id=self.run_id,
            now=self.clock(),
        )
        if not created and row.state == S.FAILED:
            row = self._advance(
                row,
                [S.FAILED],
                S.PLANNED,
                note="restarted after a failed run",
                reset={
                    "attempts": row.attempts + 1,
                    "run_id": self.run_id,
                    "previous_champion": champion,
                    "thresholds": self.thresholds.model_dump(),
                },
            )
        return row

    def preflight(self, require_approval: bool) -> DeploymentRecord:
        row = self.record()
        if reached(row.state, S.PREFLIGHT_OK):
            return row
        try:
            registry.preflight(
                self.client, self.registered_model, self.version, require_approval=require_approval
            )
        except registry.PreflightError as err:
            return self._roll_back(row, f"preflight: {err}")
        registry.mark_challenger(self.client, self.registered_model, self.version)
        return self._advance(row, [S.PLANNED], S.PREFLIGHT_OK, note="preflight passed")

    def load(self) -> DeploymentRecord:
        """Serve the version beside the champion; a version that fails to load is rolled back."""
        row = self.record()
        if reached(row.state, S.LOADED):
            return row
        try:
            self.serving.load(self.version)
        except Exception as err:  # Triton's refusal, a broken artefact: a decision, not a crash
            if not _triton_reachable(self.serving):
                raise
            return self._roll_back(row, f"failed to load: {err}")
        return self._advance(row, [S.PREFLIGHT_OK], S.LOADED, note="loaded beside the champion")

    def begin_shadow(self, share: float) -> DeploymentRecord:
        """Mirror `share` of twin_rag's requests to the challenger (none for a first deployment)."""
        row = self.record()
        if reached(row.state, S.SHADOWING):
            return row
        if row.previous_champion is not None:
            self.serving.set_shadow(self.version, share)
        return self._advance(row, [S.LOADED], S.SHADOWING, note=f"shadow share {share}")

    def check(
        self,
        pairs: Sequence[ShadowPair],
        embed: Callable[[Sequence[str]], np.ndarray],
        author_vectors: np.ndarray | None = None,
    ) -> DeploymentRecord:
        """Run every check over the shadow pairs; store the figures and the verdict."""
        row = self.record()
        if reached(row.state, S.CHECKED):
            return row
        if row.previous_champion is None:
            report = first_deployment_report(evaluation_passed=True)  # preflight checked it
        else:
            report = evaluate_shadow(pairs, self.thresholds, embed, author_vectors)
        return self._store_report(row, report)

    def _store_report(self, row: DeploymentRecord, report: CheckReport) -> DeploymentRecord:
        verdict = "promote" if report.passed else "rollback"
        figures = {**report.figures, "verdict": verdict, "checks": report.as_dict()["checks"]}
        return self._advance(
            row, [S.SHADOWING], S.CHECKED, note=verdict, figures=figures, reason=report.reason
        )

    def decide(self) -> DeploymentRecord:
        """Apply the stored verdict: promote (default switches, then the alias) or roll back."""
        row = self.record()
        if row.state in FINAL:
            return row
        if row.state != S.CHECKED:
            raise DeploymentError(f"deployment {row.deployment_id} is {row.state}, not checked")
        if row.figures.get("verdict") != "promote":
            return self._roll_back(row, row.reason or "checks failed")
        self.serving.set_shadow(None, 0.0)
        self.serving.set_default(self.version)
        registry.promote(self.client, self.registered_model, self.version, row.reason or "")
        old = row.previous_champion
        if old is not None and int(old) != self.version:
            # requests routed to the old champion just before the switch finish first
            time.sleep(self.drain_s)
            try:
                self.serving.unload(int(old))
            except Exception as err:  # the old champion stays loaded; reconcile retries
                log.warning("old champion %s stays loaded: %s", old, err)
        return self._advance(
            row, [S.CHECKED], S.PROMOTED, decision="promote", note="promoted", reason=row.reason
        )

    def _roll_back(self, row: DeploymentRecord, reason: str) -> DeploymentRecord:
        """Stop the mirror, unload the challenger, remove its alias, tag the reason, record it."""
        routing_shadow = None
        try:
            self.serving.set_shadow(None, 0.0)
        except Exception as err:  # no routing yet (nothing served): nothing mirrors
            routing_shadow = str(err)
        if self.version in self.serving.loaded_versions() or _is_served(self.serving, self.version):
            self.serving.unload(self.version)
        registry.roll_back(self.client, self.registered_model, self.version, reason)
        note = "rolled back" + (f" (shadow: {routing_shadow})" if routing_shadow else "")
        return self._advance(
            row,
            [s.value for s in IN_FLIGHT],
            S.ROLLED_BACK,
            decision="rollback",
            reason=reason,
            note=note,
        )

    def fail(self, error: str) -> DeploymentRecord | None:
        """Record that a run stopped before deciding (the reconcile step restores agreement)."""
        row = store.get_deployment(self.conn, self.registered_model, self.version)
        if row is None or row.state in FINAL or row.state == S.FAILED:
            return row
        return store.advance(
            self.conn,
            row,
            [s.value for s in IN_FLIGHT],
            S.FAILED,
            now=self.clock(),
            note=f"run failed: {error[:500]}",
        )


def _is_served(serving: ServingControl, version: int) -> bool:
    served = getattr(serving, "served_versions", None)
    return bool(served) and version in served()


def _triton_reachable(serving: ServingControl) -> bool:
    try:
        serving.loaded_versions()
    except Exception:
        return False
    return True


def run_all(
    deployment: Deployment,
    *,
    require_approval: bool,
    shadow_share: float,
    collect_pairs: Callable[[Deployment], list[ShadowPair]],
    embed: Callable[[Sequence[str]], np.ndarray],
    author_vectors: np.ndarray | None = None,
) -> DeploymentRecord:
    """Every step in order (what the DAG's tasks do one by one); stops at a decision."""
    row = deployment.start()
    for step in (
        lambda: deployment.preflight(require_approval),
        deployment.load,
        lambda: deployment.begin_shadow(shadow_share),
    ):
        if row.state in FINAL:
            return row
        row = step()
    if row.state in FINAL:
        return row
    pairs = [] if row.previous_champion is None else collect_pairs(deployment)
    deployment.check(pairs, embed, author_vectors)
    return deployment.decide()


# reconcile ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """MLflow's aliases, Triton's loaded versions and twin_rag's default against the records."""

    champion_alias: str | None
    challenger_alias: str | None
    loaded: list[int]
    default: int | None
    last_promoted: str | None
    in_flight: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def agreement(client: Any, conn: Any, serving: ServingControl, name: str) -> Agreement:
    """Compare the three views; every disagreement is named in `problems`."""
    champion = registry.alias_version(client, name, CHAMPION)
    challenger = registry.alias_version(client, name, CHALLENGER)
    records = store.list_deployments(conn, name, limit=1000)
    promoted = [r for r in records if r.state == S.PROMOTED]
    last_promoted = max(promoted, key=lambda r: r.decided_at).version if promoted else None
    in_flight = [r.version for r in records if r.state in IN_FLIGHT]
    problems: list[str] = []
    triton_up = True
    try:
        loaded = sorted(serving.loaded_versions())
        default = serving.default_version()
    except Exception as err:
        loaded, default, triton_up = [], None, False
        problems.append(f"Triton unreachable: {err}")
    if champion != last_promoted:
        problems.append(f"alias champion={champion} but last promoted record={last_promoted}")
    if champion is not None and triton_up:
        if int(champion) not in loaded:
            problems.append(f"champion {champion} is not loaded (loaded: {loaded})")
        if default != int(champion):
            problems.append(f"twin_rag default {default} is not the champion {champion}")
    expected = {int(champion)} if champion else set()
    if challenger is not None:
        if challenger not in in_flight:
            problems.append(f"alias challenger={challenger} but no deployment of it is in flight")
        expected.add(int(challenger))
    stray = sorted(set(loaded) - expected)
    if stray:
        problems.append(f"loaded versions {stray} are neither champion nor challenger")
    return Agreement(champion, challenger, loaded, default, last_promoted, in_flight, problems)


def reconcile(
    client: Any,
    conn: Any,
    serving: ServingControl,
    name: str,
    *,
    stopped: Sequence[str] = (),
    now: datetime | None = None,
) -> Agreement:
    """Bring MLflow, Triton and the records back in agreement after a failure.

    Deployments named in `stopped` (versions whose run ended without a decision) are marked
    failed, their challenger alias removed and their version unloaded; the champion is loaded
    and made twin_rag's default; any other loaded version is unloaded. MLflow and the records
    are repaired even while Triton is down; run it again once Triton is back."""
    store.ensure_schema(conn)
    now = now or datetime.now(UTC)
    for version in stopped:
        row = store.get_deployment(conn, name, version)
        if row is not None and row.state in IN_FLIGHT:
            store.advance(conn, row, [row.state], S.FAILED, now=now, note="stopped: reconciled")
    in_flight = {
        r.version for r in store.list_deployments(conn, name, 1000) if r.state in IN_FLIGHT
    }
    challenger = registry.alias_version(client, name, CHALLENGER)
    if challenger is not None and challenger not in in_flight:
        client.delete_registered_model_alias(name, CHALLENGER)
    champion = registry.alias_version(client, name, CHAMPION)
    try:
        loaded = serving.loaded_versions()
    except Exception as err:
        log.warning("reconcile: Triton unreachable (%s); MLflow and records repaired", err)
        return agreement(client, conn, serving, name)
    if champion is not None:
        if int(champion) not in loaded:
            serving.load(int(champion))
        if serving.default_version() != int(champion):
            serving.set_default(int(champion))
        serving.ensure_router()
    keep = {int(v) for v in in_flight} | ({int(champion)} if champion else set())
    for version in sorted(serving.loaded_versions() - keep):
        with contextlib.suppress(Exception):
            serving.set_shadow(None, 0.0)
        serving.unload(version)
    return agreement(client, conn, serving, name)
