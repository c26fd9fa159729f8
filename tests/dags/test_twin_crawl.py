"""`twin_crawl` under `dag.test()` on the sample author."""

import os

import pytest

from twin.store.mongo import mongo_client, twin_database

pytestmark = pytest.mark.integration


@pytest.fixture
def crawl_env(stack_settings, sample_site, monkeypatch):
    """Point the DAG's tasks (which read settings from the environment) at the sample site."""
    import json

    from sample_author.links import sample_links
    from twin.crawl.run import record_author_links

    settings = sample_site.settings(stack_settings)
    # What `twin stack up --sample` does: the DAG's default run (no links) reads these.
    record_author_links(settings.author, sample_links(sample_site.base_url), settings)
    monkeypatch.setenv("MONGO_DATABASE", settings.mongo_database)
    monkeypatch.setenv("OBJECT_STORE_URL", settings.object_store_url)
    monkeypatch.setenv("CRAWL_ALLOW_PRIVATE_HOSTS", json.dumps(settings.crawl_allow_private_hosts))
    monkeypatch.setenv("CRAWL_PLATFORM_PREFIXES", json.dumps(settings.crawl_platform_prefixes))
    monkeypatch.setenv("CRAWL_PER_HOST_RATE", "40")
    yield settings
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def test_twin_crawl_runs_green_and_emits_the_asset_only_when_something_changed(
    run_dag, crawl_env
) -> None:
    first = run_dag("twin_crawl")
    second = run_dag("twin_crawl")

    assert first.state == "success", first
    assert first.task_states["publish_if_changed"] == "success"
    assert second.state == "success", second
    assert second.task_states["publish_if_changed"] == "skipped"
    with mongo_client(crawl_env) as client:
        runs = list(twin_database(client, crawl_env)["crawl_runs"].find().sort("started_at", 1))
    assert [r["totals"]["new"] > 0 for r in runs] == [True, False]
    assert os.environ["MONGO_DATABASE"] == crawl_env.mongo_database


def test_twin_crawl_rejects_bad_links_before_crawling(run_dag, crawl_env) -> None:
    outcome = run_dag(
        "twin_crawl", {"author": "Ada Lindqvist", "links": {"blog": ["ftp://example.org/x"]}}
    )
    assert outcome.state == "failed"
    assert outcome.task_states["plan_sources"] == "failed"
