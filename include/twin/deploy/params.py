"""What a twin_deploy run may set, validated, and the DAG's Params derived from it.

Each threshold takes its default and bounds from its `deploy_*` field of `Settings`, read from the
class (parsing the DAG loads no settings and reads no environment); the title and description the
trigger form shows are declared here, once. The tasks check a run's Params with the same model,
so a value the form refuses fails the run whichever way it arrived (`airflow dags test -c`,
`dag.test(run_conf=...)`, a direct call). Light to import: the DAG file calls it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, create_model

from twin.form import named_problems, validate_strict
from twin.form import param_schemas as form_schemas
from twin.settings import Settings

# The embedding drift tests `twin.deploy.checks` implements (Settings checks the same names).
DRIFT_METHODS = Literal["mmd", "classifier"]
MAX_SHADOW_PAIRS = 5000  # a run collects them by replaying questions: bounded to stay minutes
# Thresholds a run may set for `twin.deploy.checks.Thresholds`, in form order.
THRESHOLDS = (
    "min_samples",
    "drift_method",
    "mmd_alpha",
    "max_classifier_auc",
    "ks_alpha",
    "max_style_drop",
    "max_latency_p95_ratio",
    "latency_alpha",
    "max_error_rate",
    "max_guardrail_rate",
)


def _setting(
    name: str, title: str, description: str, *, annotation: Any = None, **field: Any
) -> tuple[Any, Any]:
    """A field with the default and bounds of `Settings.<name>`; `field` adds to or replaces
    them (`default=` a form default that deliberately differs), `annotation` replaces the type
    and bounds."""
    info = Settings.model_fields[name]
    if annotation is None:
        annotation = (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
    field = {"default": info.default, **field}
    return annotation, Field(title=title, description=description, **field)


DeployParams = create_model(
    "DeployParams",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="A twin_deploy run's Params (what the trigger form shows), validated.",
    version=(
        int | None,
        Field(
            default=None,
            ge=1,
            title="Model version",
            description="Registered version of the twin to deploy (1 or more). Empty: the "
            "version holding the `challenger` alias.",
        ),
    ),
    require_approval=_setting(
        "deploy_require_approval",
        "Require approval",
        "Deploy only a version tagged review=approved; others fail preflight.",
    ),
    # A deployment mirrors a tenth of live traffic by default; outside one, twin_rag mirrors none.
    shadow_share=_setting(
        "serving_shadow_share",
        "Shadow share",
        "Fraction (0-1) of live twin_rag requests mirrored to the challenger during shadow; "
        "replayed questions fill up to Min shadow pairs.",
        default=0.1,
    ),
    min_samples=_setting(
        "deploy_min_samples",
        "Min shadow pairs",
        "Champion/challenger answer pairs (2-5000) collected before the checks run; fewer "
        "fails the checks.",
        le=MAX_SHADOW_PAIRS,
    ),
    drift_method=_setting(
        "deploy_drift_method",
        "Embedding drift test",
        "mmd: MMD permutation test on answer embeddings (see MMD alpha); classifier: a domain "
        "classifier's ROC AUC (see Max classifier AUC).",
        annotation=DRIFT_METHODS,
    ),
    mmd_alpha=_setting(
        "deploy_mmd_alpha",
        "MMD alpha",
        "With mmd: the challenger fails if the MMD test's p-value is below this (between 0 "
        "and 1, exclusive).",
    ),
    max_classifier_auc=_setting(
        "deploy_max_classifier_auc",
        "Max classifier AUC",
        "With classifier: highest ROC AUC (0.5-1) allowed for telling the two versions' "
        "answers apart; 0.5 means indistinguishable.",
    ),
    ks_alpha=_setting(
        "deploy_ks_alpha",
        "Answer-length KS alpha",
        "The challenger fails if the KS test on answer lengths (words) has a p-value below "
        "this (between 0 and 1, exclusive).",
    ),
    max_style_drop=_setting(
        "deploy_max_style_drop",
        "Max style drop",
        "Largest fall (0-2) in style similarity from champion to challenger: cosine of the "
        "answers' embedding centroid to the author's own passages.",
    ),
    max_latency_p95_ratio=_setting(
        "deploy_max_latency_p95_ratio",
        "Max p95 latency ratio",
        "Highest challenger/champion ratio of p95 latency on shadow pairs; 2.0 allows twice "
        "as slow.",
    ),
    latency_alpha=_setting(
        "deploy_latency_alpha",
        "Latency alpha",
        "Over the p95 budget, the challenger fails only if a paired signed-rank test finds it "
        "slower pair after pair with a p-value below this (above 0, at most 1; 1: the p95 "
        "budget alone decides).",
    ),
    max_error_rate=_setting(
        "deploy_max_error_rate",
        "Max error rate",
        "Highest fraction (0-1) of shadow requests the challenger may answer with an error.",
    ),
    max_guardrail_rate=_setting(
        "deploy_max_guardrail_rate",
        "Max guardrail increase",
        "Highest rise (0-1) of the challenger's guardrail-violation rate over the champion's "
        "on the same shadow pairs.",
    ),
)


def param_schemas() -> dict[str, dict[str, Any]]:
    """The twin_deploy Params: each one's default and JSON schema, in form order."""
    return form_schemas(DeployParams, tuple(DeployParams.model_fields))


def deploy_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Params a run set, validated: only those given and not empty (None or ""), so a task
    falls back to the loaded settings for the others. A ValueError names each bad Param."""
    given = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
    try:
        valid = validate_strict(DeployParams, given)
    except ValidationError as exc:
        raise ValueError(f"invalid twin_deploy Params: {named_problems(exc)}") from None
    return valid.model_dump(include=set(valid.model_fields_set))
