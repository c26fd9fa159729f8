"""Crawl every source of an author into the raw document store (MongoDB `twin.documents`).

One mapped task per source (a failing source is reported, never stops the others); the summary
is logged and stored in `crawl_runs`; the raw-documents asset is emitted only when something
changed, so the warehouse runs only when there is new work.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from twin.assets import RAW_DOCUMENTS
from twin.crawl.tasks import crawl_source, plan_sources, publish_if_changed, summarise
from twin.settings import settings

LINKS_SCHEMA = {
    "type": "object",
    "description": "URLs per platform (linkedin, medium, substack, github, blog); "
    "empty = the links stored for the author (the sample author's site in the demo)",
    "properties": {
        p: {"type": "array", "items": {"type": "string"}}
        for p in ("linkedin", "medium", "substack", "github", "blog")
    },
    "additionalProperties": False,
}


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["twin", "feature", "crawl"],
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "author": Param(settings.sample_author, type="string", minLength=1),
        "links": Param({}, **LINKS_SCHEMA),
    },
    doc_md=__doc__,
)
def twin_crawl():
    sources = task(plan_sources, retries=0)()
    reports = task(crawl_source, max_active_tis_per_dag=4).expand(source=sources)
    summary = task(summarise, trigger_rule="all_done", retries=0)(reports, sources)
    task(publish_if_changed, outlets=[Asset(**RAW_DOCUMENTS)])(summary)


twin_crawl()
