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
from twin.deploy.params import param_schemas
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
    # Declared once in twin.deploy.params (thresholds default to the `deploy_*` settings), whose
    # model checks again what reaches each task.
    params={
        name: Param(schema.pop("default"), **schema) for name, schema in param_schemas().items()
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
