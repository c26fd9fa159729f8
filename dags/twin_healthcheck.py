"""Check every service of the platform through TwinOps' own clients; fail with a readable report.

One task per service (Postgres + pgvector, MongoDB, MLflow, Triton, object store), each doing a
real round trip; the last task logs the report and fails the run when any service is unhealthy.
"""

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from twin.ops.healthcheck import CHECKS, check_service_report, summarise_health


@dag(
    schedule="*/30 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    tags=["twin", "ops"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def twin_healthcheck():
    results = [
        task(task_id=f"check_{service}")(check_service_report)(service) for service in CHECKS
    ]
    # A failed check is in the report; retrying the summary would only repeat it.
    task(task_id="summarise", retries=0)(summarise_health)(results)


twin_healthcheck()
