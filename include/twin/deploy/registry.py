"""The MLflow side of a deployment: preflight, promotion and rollback through aliases and tags.

MLflow aliases are the source of truth: `champion` names the version clients are served,
`challenger` the version under test. Every function here is idempotent: promoting the champion
again, or rolling back a version that holds no alias, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twin.domain.models import CHALLENGER, CHAMPION, ReviewState, VersionTag

TRUE_VALUES = {"true", "1", "yes", "passed"}
# Tags written by deployment (besides VersionTag.DEPLOYMENT, the version's last outcome).
TAG_DEPLOYMENT_REASON = "deployment_reason"
TAG_DEPLOYED_AT = "deployment_at"
TAG_REPLACED_BY = "replaced_by"
TAG_RETIRED_AT = "retired_at"


class PreflightError(ValueError):
    """A version that must not be deployed, with the reason."""


class RegistryUnavailable(RuntimeError):
    """MLflow could not answer (unreachable, timed out, or failing): nothing can be concluded
    about the version or alias asked for, so the step fails and is retried, never decided."""


def _absent(err: Exception) -> bool:
    """Whether an MlflowException says the thing asked for does not exist (as opposed to MLflow
    being unreachable or failing): a missing model or version is RESOURCE_DOES_NOT_EXIST, a
    missing alias INVALID_PARAMETER_VALUE with "not found"."""
    code = getattr(err, "error_code", None)
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    return code == "INVALID_PARAMETER_VALUE" and "not found" in str(err).lower()


def _unavailable(what: str, err: Exception) -> RegistryUnavailable:
    return RegistryUnavailable(f"MLflow could not answer for {what}: {err}")


@dataclass(frozen=True)
class VersionInfo:
    """What deployment needs to know about a registered version."""

    name: str
    version: str
    run_id: str | None
    source: str | None
    tags: dict[str, str]
    aliases: list[str]


def version_info(client: Any, name: str, version: str | int) -> VersionInfo:
    """The registered version; PreflightError when it does not exist, RegistryUnavailable when
    MLflow cannot say (an outage is never read as "does not exist")."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as err:
        if _absent(err):
            raise PreflightError(f"model version {name}/{version} does not exist") from err
        raise _unavailable(f"model version {name}/{version}", err) from err
    return VersionInfo(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
        aliases=list(getattr(mv, "aliases", []) or []),
    )


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias points at, None when no version holds it (or the model is not
    registered); RegistryUnavailable when MLflow cannot say (an outage is not "no champion")."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if _absent(err):
            return None
        raise _unavailable(f"alias {alias!r} of {name}", err) from err


def preflight(client: Any, name: str, version: str | int, *, require_approval: bool) -> VersionInfo:
    """Check that a version may be deployed: it exists, is not rejected, passed its evaluation
    thresholds, and carries `review=approved` when approval is required."""
    info = version_info(client, name, version)
    review = info.tags.get(VersionTag.REVIEW, ReviewState.PENDING)
    if review == ReviewState.REJECTED:
        note = info.tags.get(VersionTag.REVIEW_NOTE, "")
        raise PreflightError(
            f"model version {name}/{info.version} was rejected in review"
            + (f": {note}" if note else "")
        )
    passed = info.tags.get(VersionTag.EVALUATION_PASSED)
    if passed is None or passed.strip().lower() not in TRUE_VALUES:
        raise PreflightError(
            f"model version {name}/{info.version} has not passed its evaluation thresholds "
            f"(tag {VersionTag.EVALUATION_PASSED}={passed!r})"
        )
    if require_approval and review != ReviewState.APPROVED:
        raise PreflightError(
            f"model version {name}/{info.version} needs {VersionTag.REVIEW}=approved "
            f"(it is {review!r}) because require_approval is set"
        )
    return info


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def mark_challenger(client: Any, name: str, version: str | int) -> None:
    """Point `challenger` at the version under test (no-op when it already does)."""
    if alias_version(client, name, CHALLENGER) != str(version):
        client.set_registered_model_alias(name, CHALLENGER, str(version))


def promote(client: Any, name: str, version: str | int, reason: str) -> str | None:
    """Move `champion` to `version`, tag the old champion as replaced, drop `challenger` when it
    points at `version`; returns the previous champion (None for the first deployment)."""
    version = str(version)
    previous = alias_version(client, name, CHAMPION)
    if previous is not None and previous != version:
        client.set_model_version_tag(name, previous, VersionTag.DEPLOYMENT, "retired")
        client.set_model_version_tag(name, previous, TAG_REPLACED_BY, version)
        client.set_model_version_tag(name, previous, TAG_RETIRED_AT, _now())
    if previous != version:
        client.set_registered_model_alias(name, CHAMPION, version)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    _mark_deployment(client, name, version, "champion", reason)
    return previous if previous != version else None


def roll_back(client: Any, name: str, version: str | int, reason: str) -> None:
    """Remove `challenger` from `version` (when it holds it) and tag the version with the reason.
    The champion alias never moves here."""
    version = str(version)
    if alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    _mark_deployment(client, name, version, "rolled_back", reason)


def mark_retry(client: Any, name: str, version: str | int, reason: str, by: str) -> None:
    """Tag `version` as due for another deployment (who asked and why); its next decision
    replaces the tag."""
    version = str(version)
    client.set_model_version_tag(name, version, VersionTag.DEPLOYMENT, "retry")
    note = f"retry requested by {by}: {reason}"
    client.set_model_version_tag(name, version, TAG_DEPLOYMENT_REASON, note[:5000])
    client.set_model_version_tag(name, version, TAG_DEPLOYED_AT, _now())


def _mark_deployment(client: Any, name: str, version: str, state: str, reason: str) -> None:
    """Tag `version` with its deployment state, the reason and the time, unless it has that
    state already (a repeated call keeps the first reason and time)."""
    tags = client.get_model_version(name, version).tags or {}
    if tags.get(VersionTag.DEPLOYMENT) != state:
        client.set_model_version_tag(name, version, VersionTag.DEPLOYMENT, state)
        client.set_model_version_tag(name, version, TAG_DEPLOYMENT_REASON, reason[:5000])
        client.set_model_version_tag(name, version, TAG_DEPLOYED_AT, _now())


def model_version_url(tracking_uri: str, name: str, version: str | int) -> str:
    """The MLflow UI page of a registered version."""
    return f"{tracking_uri.rstrip('/')}/#/models/{name}/versions/{version}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of a run."""
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
