"""Human review of registered versions: list, show, approve, reject. Decisions are version tags
(who, when, why) the MLflow UI shows; a rejected version loses every alias, so it never deploys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from twin.domain.models import CHALLENGER, CHAMPION, ReviewState, VersionTag
from twin.settings import Settings
from twin.store.tracking import tracking_client


class ReviewError(ValueError):
    """A review request that cannot apply (unknown version, missing reviewer or reason)."""


@dataclass(frozen=True)
class VersionSummary:
    version: str
    review: str
    aliases: tuple[str, ...]
    created: str
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    description: str = ""


def list_versions(settings: Settings) -> list[VersionSummary]:
    """Every version of the registered model, newest first."""
    from dataclasses import replace

    client = tracking_client(settings)
    found = client.search_model_versions(f"name = '{settings.registered_model}'")
    if not found:
        return []
    # searched versions come without their aliases: the registered model has them all
    aliases: dict[str, list[str]] = {}
    for alias, version in (
        client.get_registered_model(settings.registered_model).aliases or {}
    ).items():
        aliases.setdefault(str(version), []).append(alias)
    summaries = [
        replace(s, aliases=tuple(sorted(aliases.get(s.version, [])))) for s in map(_summary, found)
    ]
    return sorted(summaries, key=lambda s: int(s.version), reverse=True)


def show_version(settings: Settings, version: str) -> VersionSummary:
    return _summary(_get(settings, version))


def approve(settings: Settings, version: str, by: str, note: str = "") -> VersionSummary:
    """Mark a version approved by `by`; it keeps its aliases (deployment may promote it)."""
    if not by.strip():
        raise ReviewError("--by: name who approves the version")
    version = str(_get(settings, version).version)
    _decide(settings, version, ReviewState.APPROVED, by, note)
    return show_version(settings, version)


def reject(settings: Settings, version: str, reason: str, by: str) -> VersionSummary:
    """Mark a version rejected with its reason; every alias pointing at it is removed."""
    if not reason.strip():
        raise ReviewError("--reason: say why the version is rejected")
    if not by.strip():
        raise ReviewError("--by: name who rejects the version")
    mv = _get(settings, version)
    version = str(mv.version)
    _decide(settings, version, ReviewState.REJECTED, by, reason)
    client = tracking_client(settings)
    for alias in list(getattr(mv, "aliases", []) or []):
        client.delete_registered_model_alias(settings.registered_model, alias)
    return show_version(settings, version)


def _decide(settings: Settings, version: str, state: ReviewState, by: str, note: str) -> None:
    client = tracking_client(settings)
    tags = {
        VersionTag.REVIEW: state.value,
        VersionTag.REVIEWED_BY: by.strip(),
        VersionTag.REVIEWED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        VersionTag.REVIEW_NOTE: note.strip(),
    }
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key.value, value)


def _get(settings: Settings, version: str):
    """The registered version by number, or by alias (`challenger`: the candidate training
    registered last)."""
    from mlflow.exceptions import MlflowException

    if str(version) in (CHALLENGER, CHAMPION):
        try:
            return tracking_client(settings).get_model_version_by_alias(
                settings.registered_model, str(version)
            )
        except MlflowException as exc:
            raise ReviewError(f"no version of {settings.registered_model} is {version}") from exc
    if not str(version).isdigit():
        raise ReviewError(
            f"VERSION must be a version number of {settings.registered_model} or "
            f"{CHALLENGER}/{CHAMPION}, got {version!r}"
        )
    try:
        return tracking_client(settings).get_model_version(settings.registered_model, str(version))
    except MlflowException as exc:
        raise ReviewError(f"{settings.registered_model} has no version {version}") from exc


def _summary(mv) -> VersionSummary:
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(
        timespec="seconds"
    )
    tags = dict(mv.tags or {})
    return VersionSummary(
        version=str(mv.version),
        review=tags.get(VersionTag.REVIEW.value, "unknown"),
        aliases=tuple(sorted(getattr(mv, "aliases", []) or [])),
        created=created,
        tags=tags,
        run_id=mv.run_id,
        description=mv.description or "",
    )


__all__ = ["CHALLENGER", "ReviewError", "approve", "list_versions", "reject", "show_version"]
