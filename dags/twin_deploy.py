"""Deploy a registered version of the twin beside the champion, judge it on shadow traffic, and
promote it or roll it back.

Scheduled on the `model_candidates` asset (training registered a version as `challenger`) and
triggerable with a `version` Param. preflight (exists, not rejected, evaluation passed, approved
when required) → load beside the champion → shadow (twin_rag mirrors a share of live requests; the
run replays recent logged questions and the evaluation questions until `min_samples` pairs) →
checks (MMD or classifier embedding drift, answer-length KS, style, latency p95 ratio, error and
guardrail rates) → promote (alias `champion` moves, twin_rag's default switches) or roll back.
The deployment is one record in `serving.deployments`: a rerun resumes it or, once decided,
changes nothing; `reconcile` always runs last and fails the run if MLflow's aliases, Triton's
loaded versions and the records disagree.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from twin.assets import MODEL_CANDIDATES
from twin.deploy.notifier import WebhookNotifier
from twin.deploy.tasks import (
    check_task,
    decide_task,
    load_task,
    preflight_task,
    reconcile_task,
    resolve_version,
    shadow_task,
)


@dag(
    schedule=[Asset(**MODEL_CANDIDATES)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["twin", "serving", "deployment"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    on_failure_callback=WebhookNotifier("twin_deploy {{ run_id }} failed"),
    params={
        "version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Model version",
            description="Registered version of the twin to deploy (1 or more). Empty: the "
            "version holding the `challenger` alias.",
        ),
        "require_approval": Param(
            False,
            type="boolean",
            title="Require approval",
            description="Deploy only a version tagged review=approved; others fail preflight.",
        ),
        "shadow_share": Param(
            0.1,
            type="number",
            minimum=0,
            maximum=1,
            title="Shadow share",
            description="Fraction (0-1) of live twin_rag requests mirrored to the challenger "
            "during shadow; replayed questions fill up to Min shadow pairs.",
        ),
        "min_samples": Param(
            40,
            type="integer",
            minimum=2,
            maximum=5000,
            title="Min shadow pairs",
            description="Champion/challenger answer pairs (2-5000) collected before the checks "
            "run; fewer fails the checks.",
        ),
        "drift_method": Param(
            "mmd",
            enum=["mmd", "classifier"],
            title="Embedding drift test",
            description="mmd: MMD permutation test on answer embeddings (see MMD alpha); "
            "classifier: a domain classifier's ROC AUC (see Max classifier AUC).",
        ),
        "mmd_alpha": Param(
            0.01,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            title="MMD alpha",
            description="With mmd: the challenger fails if the MMD test's p-value is below "
            "this (between 0 and 1, exclusive).",
        ),
        "max_classifier_auc": Param(
            0.75,
            type="number",
            minimum=0.5,
            maximum=1,
            title="Max classifier AUC",
            description="With classifier: highest ROC AUC (0.5-1) allowed for telling the two "
            "versions' answers apart; 0.5 means indistinguishable.",
        ),
        "ks_alpha": Param(
            0.01,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            title="Answer-length KS alpha",
            description="The challenger fails if the KS test on answer lengths (words) has a "
            "p-value below this (between 0 and 1, exclusive).",
        ),
        "max_style_drop": Param(
            0.1,
            type="number",
            minimum=0,
            maximum=2,
            title="Max style drop",
            description="Largest fall (0-2) in style similarity from champion to challenger: "
            "cosine of the answers' embedding centroid to the author's own passages.",
        ),
        "max_latency_p95_ratio": Param(
            2.0,
            type="number",
            exclusiveMinimum=0,
            title="Max p95 latency ratio",
            description="Highest challenger/champion ratio of p95 latency on shadow pairs; "
            "2.0 allows twice as slow.",
        ),
        "max_error_rate": Param(
            0.02,
            type="number",
            minimum=0,
            maximum=1,
            title="Max error rate",
            description="Highest fraction (0-1) of shadow requests the challenger may answer "
            "with an error.",
        ),
        "max_guardrail_rate": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            title="Max guardrail increase",
            description="Highest rise (0-1) of the challenger's guardrail-violation rate over "
            "the champion's on the same shadow pairs.",
        ),
    },
    doc_md=__doc__,
)
def twin_deploy():
    version = task(resolve_version, task_id="resolve_version")()
    preflight = task(preflight_task, task_id="preflight")(version)
    loaded = task(load_task, task_id="load_beside_champion")(version)
    shadow = task(shadow_task, task_id="shadow", execution_timeout=timedelta(minutes=30))(version)
    checked = task(check_task, task_id="checks")(version)
    decided = task(decide_task, task_id="promote_or_roll_back")(version)
    reconciled = task(reconcile_task, task_id="reconcile", trigger_rule="all_done", retries=2)(
        version
    )
    preflight >> loaded >> shadow >> checked >> decided >> reconciled


twin_deploy()
