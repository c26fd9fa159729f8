"""One deployment of a registered version, as resumable, idempotent steps over its record in
`serving.deployments` (see `twin.deploy.state` for the states).

Each step reads the record, does nothing when the deployment has already passed it, acts, and
moves the record on with a compare-and-set. The order inside a step keeps MLflow (the source of
truth), Triton and the record in agreement when the step fails halfway: the challenger alias is set
before loading and removed only after unloading; the champion alias moves only after Triton's
default has switched. `reconcile` repairs whatever a crashed run left behind.

Deployments of one registered model never interleave: a Postgres advisory lock serialises
admitting a deployment, deciding one and reconciling, and a deployment is admitted only while
no other version's deployment is in flight (the `challenger` alias and twin_rag's shadow hold one
version at a time).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from twin.deploy import registry
from twin.deploy.checks import (
    CheckReport,
    ShadowPair,
    Thresholds,
    VersionAnswer,
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


class DeploymentBusy(DeploymentError):
    """Another version of the same registered model is being deployed: retry once it decided."""


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
    backend: str | None = None  # the LLM backend serving runs (settings.serving_llm_backend)
    drain_s: float = 2.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def record(self) -> DeploymentRecord:
        row = store.get_deployment(self.conn, self.registered_model, self.version)
        if row is None:
            raise DeploymentError(f"no deployment of {self.registered_model}/{self.version}")
        return row

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """This model's deployment lock; held too long by another run, DeploymentBusy."""
        try:
            with store.deployment_lock(self.conn, self.registered_model):
                yield
        except store.LockTimeout as err:
            raise DeploymentBusy(f"{self.registered_model}/{self.version}: {err}") from None

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
        """Create the record (planned), restart a failed one, or return a running/decided one.
        Raises DeploymentBusy while another version's deployment is in flight, and
        RegistryUnavailable when MLflow cannot say who the champion is."""
        store.ensure_schema(self.conn)
        with self._lock():
            # read under the lock: a deployment deciding meanwhile may move the champion
            champion = registry.alias_version(self.client, self.registered_model, CHAMPION)
            others = [
                r
                for r in store.list_deployments(self.conn, self.registered_model, 1000)
                if r.state in IN_FLIGHT and r.version != str(self.version)
            ]
            if others:
                busy = ", ".join(f"version {r.version} ({r.state})" for r in others)
                raise DeploymentBusy(
                    f"cannot deploy {self.registered_model}/{self.version}: the deployment of "
                    f"{busy} is in flight; retry once it is decided (or reconciled as failed)"
                )
            row, created = store.plan_deployment(
                self.conn,
                self.registered_model,
                self.version,
                state=S.PLANNED,
                previous_champion=champion,
                thresholds=self.thresholds.model_dump(),
                run_id=self.run_id,
                now=self.clock(),
                backend=self.backend,
            )
            if not created and row.state == S.FAILED:
                row = self._restart(row, champion, "restarted after a failed run", [S.FAILED])
        return row

    def _restart(
        self,
        row: DeploymentRecord,
        champion: str | None,
        note: str,
        expected: Sequence[str],
        details: dict[str, Any] | None = None,
    ) -> DeploymentRecord:
        """Back to planned against today's champion; the earlier attempt's outcome stays in the
        history entry."""
        earlier = {"decision": row.decision, "reason": row.reason, "figures": row.figures}
        return self._advance(
            row,
            expected,
            S.PLANNED,
            note=note,
            details={"earlier": earlier, **(details or {})},
            reset={
                "attempts": row.attempts + 1,
                "run_id": self.run_id,
                "previous_champion": champion,
                "thresholds": self.thresholds.model_dump(),
                "figures": {},
                "decision": None,
                "reason": None,
            },
        )

    def retry(self, reason: str, by: str) -> DeploymentRecord:
        """Restart a decided (or failed) deployment: the version's next run judges it again
        against today's champion. Refused for the champion itself and while another version
        is in flight; `by` and `reason` are kept in the record's history and on the version."""
        if not reason.strip():
            raise DeploymentError("a retry needs a reason")
        store.ensure_schema(self.conn)
        row = self.record()
        if row.state not in (S.ROLLED_BACK, S.FAILED, S.PROMOTED):
            raise DeploymentError(
                f"deployment {row.deployment_id} is {row.state}: it has not been decided yet"
            )
        with self._lock():
            champion = registry.alias_version(self.client, self.registered_model, CHAMPION)
            if champion == str(self.version):
                raise DeploymentError(
                    f"version {self.version} is the champion: there is nothing to retry"
                )
            others = [
                r.version
                for r in store.list_deployments(self.conn, self.registered_model, 1000)
                if r.state in IN_FLIGHT and r.version != str(self.version)
            ]
            if others:
                raise DeploymentBusy(
                    f"cannot retry {row.deployment_id}: version(s) {', '.join(others)} in flight"
                )
            registry.mark_retry(self.client, self.registered_model, self.version, reason, by)
            return self._restart(
                row,
                champion,
                f"retry requested by {by}: {reason}",
                [row.state],
                {"by": by, "why": reason},
            )

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
            # the artefact comes from MLflow: an outage there is retried, not a rollback
            registry.version_info(self.client, self.registered_model, self.version)
            return self._roll_back(row, f"failed to load: {err}")
        return self._advance(row, [S.PREFLIGHT_OK], S.LOADED, note="loaded beside the champion")

    def begin_shadow(self, share: float) -> DeploymentRecord:
        """Mirror `share` of twin_rag's requests to the challenger (none for a first deployment)."""
        row = self.record()
        if reached(row.state, S.SHADOWING):
            return row
        with self._lock():
            if row.previous_champion is not None:
                self.serving.set_shadow(self.version, share)
            return self._advance(row, [S.LOADED], S.SHADOWING, note=f"shadow share {share}")

    def check(
        self,
        pairs: Sequence[ShadowPair],
        embed: Callable[[Sequence[str]], np.ndarray],
        author_vectors: np.ndarray | None = None,
        *,
        anchor_problem: str | None = None,
        answers: Sequence[VersionAnswer] = (),
        answers_problem: str | None = None,
        publish: Callable[[CheckReport], dict[str, Any]] | None = None,
    ) -> DeploymentRecord:
        """Run every check: over the shadow pairs against the champion, or, for a first
        deployment, over the version's own answers to its author's evaluation questions
        (`answers`; `answers_problem` says why there are none). Store the figures, the verdict
        and what `publish` returns (the links of the report attached to the version)."""
        row = self.record()
        if reached(row.state, S.CHECKED):
            return row
        if row.previous_champion is None:
            report = first_deployment_report(answers, self.thresholds, answers_problem)
        else:
            report = evaluate_shadow(
                pairs, self.thresholds, embed, author_vectors, anchor_problem=anchor_problem
            )
        links = publish(report) if publish else {}
        return self._store_report(row, report, links)

    def _store_report(
        self, row: DeploymentRecord, report: CheckReport, links: dict[str, Any] | None = None
    ) -> DeploymentRecord:
        verdict = "promote" if report.passed else "rollback"
        figures = {
            **report.figures,
            **(links or {}),
            "verdict": verdict,
            "checks": report.as_dict()["checks"],
        }
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
        with self._lock():
            if row.figures.get("verdict") != "promote":
                return self._roll_back(row, row.reason or "checks failed")
            champion = registry.alias_version(self.client, self.registered_model, CHAMPION)
            if champion not in (row.previous_champion, str(self.version)):
                raise DeploymentError(
                    f"deployment {row.deployment_id} was judged against champion "
                    f"{row.previous_champion}, but the champion is now {champion}: rerun it"
                )
            return self._promote(row)

    def _promote(self, row: DeploymentRecord) -> DeploymentRecord:
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
    anchor_problem: str | None = None,
    collect_answers: Callable[[Deployment], tuple[list[VersionAnswer], str | None]] | None = None,
    publish: Callable[[Deployment, CheckReport], dict[str, Any]] | None = None,
) -> DeploymentRecord:
    """Every step in order (what the DAG's tasks do one by one); stops at a decision. A first
    deployment is judged on what `collect_answers` returns (its answers, or why there are
    none); `publish` attaches the decision's report to the version."""
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
    on_report = (lambda report: publish(deployment, report)) if publish else None
    if row.previous_champion is None:
        answers, problem = (
            collect_answers(deployment)
            if collect_answers
            else ([], "no evaluation question was asked")
        )
        deployment.check([], embed, answers=answers, answers_problem=problem, publish=on_report)
    else:
        deployment.check(
            collect_pairs(deployment),
            embed,
            author_vectors,
            anchor_problem=anchor_problem,
            publish=on_report,
        )
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
    """Compare the three views; every disagreement is named in `problems`. Loaded versions
    without a deployment record were not loaded by a deployment and are left out."""
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
    stray = sorted((set(loaded) & _owned(records)) - expected)
    if stray:
        problems.append(f"loaded versions {stray} are neither champion nor challenger")
    return Agreement(champion, challenger, loaded, default, last_promoted, in_flight, problems)


def _owned(records: Sequence[DeploymentRecord]) -> set[int]:
    """Versions a deployment may have loaded: those with a record (others, such as a version
    served by hand with `twin serve up`, are not the deployments' to unload)."""
    return {int(r.version) for r in records}


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

    A version MLflow holds as champion whose record is not `promoted` (the run failed between
    the promotion and the record's update) gets its record repaired to `promoted`. Deployments
    named in `stopped` (versions whose run ended without a decision) are marked failed, their
    challenger alias removed and their version unloaded; the champion is loaded and made
    twin_rag's default; any other version a deployment loaded is unloaded (versions without a
    record are left alone). MLflow and the records are repaired even while Triton is down; run
    it again once Triton is back. Raises RegistryUnavailable while MLflow cannot answer."""
    store.ensure_schema(conn)
    now = now or datetime.now(UTC)
    with store.deployment_lock(conn, name):
        champion = registry.alias_version(client, name, CHAMPION)
        if champion is not None:
            _repair_promoted(conn, serving, name, champion, now)
        for version in stopped:
            row = store.get_deployment(conn, name, version)
            if row is not None and row.state in IN_FLIGHT:
                store.advance(conn, row, [row.state], S.FAILED, now=now, note="stopped: reconciled")
        records = store.list_deployments(conn, name, 1000)
        in_flight = {r.version for r in records if r.state in IN_FLIGHT}
        challenger = registry.alias_version(client, name, CHALLENGER)
        if challenger is not None and challenger not in in_flight:
            client.delete_registered_model_alias(name, CHALLENGER)
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
        for version in sorted((serving.loaded_versions() & _owned(records)) - keep):
            with contextlib.suppress(Exception):
                serving.set_shadow(None, 0.0)
            serving.unload(version)
        return agreement(client, conn, serving, name)


def _repair_promoted(
    conn: Any, serving: ServingControl, name: str, champion: str, now: datetime
) -> None:
    """The champion's record says it was promoted; MLflow's alias is the source of truth (it
    moves only after twin_rag's default switched)."""
    row = store.get_deployment(conn, name, champion)
    if row is None or row.state not in {S.FAILED, *IN_FLIGHT}:
        return
    try:
        default = serving.default_version()
    except Exception as err:  # the note says what was seen; the alias decides
        default = f"unknown ({err})"
    note = (
        f"repaired by reconcile: MLflow holds version {champion} as champion "
        f"(twin_rag default: {default}); the run failed after promoting it"
    )
    store.advance(
        conn,
        row,
        [row.state],
        S.PROMOTED,
        now=now,
        decision="promote",
        note=note,
        reason=row.reason or "promoted; record repaired by reconcile",
    )
    log.warning("deployment %s: %s", row.deployment_id, note)
