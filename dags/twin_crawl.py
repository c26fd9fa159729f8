"""Crawl every source of an author into the raw document store (MongoDB `twin.documents`).

One mapped task per source (a failing source is reported, never stops the others); the summary
is logged and stored in `crawl_runs`; the raw-documents asset is emitted only when something
changed, so the warehouse runs only when there is new work.
"""

from datetime import timedelta

from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, task

from twin.assets import CRAWL_POOL, CRAWL_QUEUE, RAW_DOCUMENTS
from twin.crawl.params import param_schemas, plan_crawl
from twin.crawl.tasks import crawl_source, publish_if_changed, summarise


@dag(
    # No start date: the first scheduled run is the next 00:00 UTC, so unpausing the DAG never
    # queues a run of a past day in front of the user's own trigger. run_immediately must be a
    # zero delta: False (the default) still runs the last 00:00 when unpaused within a tenth
    # of a day after it.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["twin", "feature", "crawl"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    # One list field per platform (one URL per line in the form); the task checks them again.
    params={
        name: Param(schema.pop("default"), **schema) for name, schema in param_schemas().items()
    },
    doc_md=__doc__,
)
def twin_crawl():
    sources = task(plan_crawl, task_id="plan_sources", retries=0)()
    reports = task(
        crawl_source, max_active_tis_per_dag=4, pool=CRAWL_POOL, queue=CRAWL_QUEUE
    ).expand(source=sources)
    summary = task(summarise, trigger_rule="all_done", retries=0)(reports, sources)
    task(publish_if_changed, outlets=[Asset(**RAW_DOCUMENTS)])(summary)


twin_crawl()
