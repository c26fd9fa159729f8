"""The `twin_crawl` DAG's task callables.

Light to import (the DAG processor parses the DAG often): each loads the crawl code when it runs.
"""

from __future__ import annotations


def plan_sources(params: dict) -> list[dict]:
    """Validate the run's params (`author`, `links`) and list the sources, one mapped task each.

    Airflow passes the run's params in; a bad link fails this task with every problem listed.
    """
    from twin.crawl.run import plan_sources as plan

    links = {platform: urls for platform, urls in (params.get("links") or {}).items() if urls}
    return plan(params["author"], links or None)


def crawl_source(source: dict) -> dict:
    """Crawl one source into the raw store; its failures are in the returned report."""
    from twin.crawl.run import crawl_source as crawl

    return crawl(source)


def summarise(reports: list[dict], sources: list[dict] | None = None) -> dict:
    """Record the run in `crawl_runs` and log its summary table; fail when a source has no
    report (its crawl task failed) or nothing was planned."""
    from twin.crawl.run import summarise as summarise_run

    return summarise_run(list(reports or []), planned=list(sources or []))


def publish_if_changed(summary: dict) -> dict:
    """Succeed (emitting the raw-documents asset) only when the run changed documents."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not summary.get("has_changes"):
        raise AirflowSkipException("no document was added, changed or deleted: nothing to publish")
    return summary
