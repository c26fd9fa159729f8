"""A whole crawl of the sample author into MongoDB: counts, idempotence, one edit, failures."""

import re

import pytest

from sample_author.links import sample_links
from twin.crawl.run import crawl_source, plan_sources, record_author_links, summarise
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore

pytestmark = pytest.mark.integration


def crawl_all(settings) -> tuple[dict, list[dict]]:
    reports = [crawl_source(s, settings) for s in plan_sources(settings.author, None, settings)]
    return summarise(reports, settings), reports


@pytest.fixture(scope="module")
def settings(stack_settings, sample_site):
    """The sample site's links recorded as the sample author's: the crawls below give none."""
    settings = sample_site.settings(stack_settings)
    record_author_links(settings.author, sample_links(sample_site.base_url), settings)
    yield settings
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


@pytest.fixture(scope="module")
def first_run(settings):
    return crawl_all(settings)


def test_first_crawl_lands_every_document_of_the_sample_author(settings, sample_site, first_run):
    summary, reports = first_run
    expected = {p: m.expected_documents for p, m in sample_site.manifest.platforms.items()}
    with mongo_client(settings) as client:
        store = RawDocumentStore(twin_database(client, settings))
        per_platform = {p: store.count(platform=p) for p in expected}
        run = store.latest_run()

    assert per_platform == expected
    assert summary["new"] == sum(expected.values()) and summary["changed"] == 0
    assert summary["has_changes"] is True and run["totals"]["new"] == summary["new"]
    assert {r["platform"] for r in reports} == set(expected)


def test_broken_pages_are_per_item_failures_and_the_draft_is_skipped(sample_site, first_run):
    _, reports = first_run
    blog = next(r for r in reports if r["platform"] == "blog")
    failed = {f["url"].removeprefix(sample_site.base_url): f["reason"] for f in blog["failures"]}
    skipped = {s["url"].removeprefix(sample_site.base_url) for s in blog["skips"]}

    for path in (
        "/blog/broken-500/",
        "/blog/truncated/",
        "/blog/loop-a/",
        "/blog/huge/",
        "/blog/go-internal/",
        "/blog/go-private/",
    ):
        assert path in failed, (path, failed)
    assert "500" in failed["/blog/broken-500/"]
    assert "/blog/drafts/feature-stores/" in skipped
    assert sample_site.server.hits.get("/blog/drafts/feature-stores/", 0) == 0
    assert blog["error"] is None


def test_second_crawl_inserts_and_updates_nothing(settings, first_run) -> None:
    summary, _ = crawl_all(settings)
    assert (summary["new"], summary["changed"], summary["deleted"]) == (0, 0, 0)
    assert summary["has_changes"] is False


def test_editing_one_page_yields_exactly_one_changed_document(settings, sample_site, first_run):
    page = "/blog/the-tuesday-test/"
    html = sample_site.server.file_for(page).read_text()
    sentence = re.search(r"<p>([^<]{60,}?\.)", html[html.index("<article") :]).group(1)
    sample_site.server.mutate(page, sentence, sentence.replace(" ", " really ", 1))

    summary, reports = crawl_all(settings)

    assert (summary["new"], summary["changed"], summary["deleted"]) == (0, 1, 0)
    assert next(r for r in reports if r["platform"] == "blog")["changed"] == 1
