"""The states of a deployment and which step leaves which state.

    planned → preflight_ok → loaded → shadowing → checked → promoted | rolled_back
                 any non-final state ─(an infrastructure step failed)→ failed → planned (rerun)

`promoted` and `rolled_back` are decisions: final, a rerun changes nothing. `failed` means a run
stopped before deciding; the reconcile step has put MLflow, Triton and the record back in
agreement, and the next run starts the deployment again.
"""

from __future__ import annotations

from enum import StrEnum


class DeploymentState(StrEnum):
    PLANNED = "planned"
    PREFLIGHT_OK = "preflight_ok"
    LOADED = "loaded"
    SHADOWING = "shadowing"
    CHECKED = "checked"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


FINAL = frozenset({DeploymentState.PROMOTED, DeploymentState.ROLLED_BACK})
# States in which the challenger is (or may be) loaded beside the champion.
IN_FLIGHT = frozenset(
    {
        DeploymentState.PLANNED,
        DeploymentState.PREFLIGHT_OK,
        DeploymentState.LOADED,
        DeploymentState.SHADOWING,
        DeploymentState.CHECKED,
    }
)
ORDER = (
    DeploymentState.PLANNED,
    DeploymentState.PREFLIGHT_OK,
    DeploymentState.LOADED,
    DeploymentState.SHADOWING,
    DeploymentState.CHECKED,
)


def reached(state: str, step: DeploymentState) -> bool:
    """Whether a deployment in `state` has already passed `step` (or decided)."""
    if state in FINAL:
        return True
    if state == DeploymentState.FAILED:
        return False
    return ORDER.index(DeploymentState(state)) >= ORDER.index(step)
