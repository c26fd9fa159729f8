"""Watch the twin in production, every hour: query drift against a reference window (PSI over ten
buckets of the question embeddings and of the top-1 retrieval similarity, with an MMD test),
latency and error SLOs from Triton's metrics endpoint and the inference log, and the share of
questions answered with nothing above the similarity floor. Each threshold crossed is an alert:
a row in `serving.alerts`, a log line and a webhook POST, once per window.
"""

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from twin.deploy.tasks import monitor_task


@dag(
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    tags=["twin", "serving", "monitoring"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
)
def twin_monitor():
    task(monitor_task, task_id="monitor_window")()


twin_monitor()
