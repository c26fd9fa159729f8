"""Stored author links: what a crawl without links of its own reads (`twin.authors`)."""

import uuid

import pytest

from twin.crawl.run import plan_sources, record_author_links
from twin.store.mongo import mongo_client, twin_database
from twin.store.raw_documents import RawDocumentStore

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(stack_settings):
    settings = stack_settings.model_copy(update={"mongo_database": f"t_{uuid.uuid4().hex[:10]}"})
    yield settings
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def stored_links(settings, author: str) -> dict:
    with mongo_client(settings) as client:
        return RawDocumentStore(twin_database(client, settings)).author_links(author)


def test_a_crawl_without_links_plans_the_links_recorded_for_its_author(settings) -> None:
    links = {
        "blog": ["https://blog.example.org/sitemap.xml"],
        "github": ["https://github.com/ada/tidy-vectors"],
    }
    assert record_author_links("Grace Author", links, settings) is True

    planned = plan_sources("Grace Author", None, settings)

    assert {(s["platform"], s["url"]) for s in planned} == {
        ("blog", "https://blog.example.org/sitemap.xml"),
        ("github", "https://github.com/ada/tidy-vectors"),
    }
    assert all(s["author"] == "Grace Author" and s["rejected"] is None for s in planned)
    # Links given to the run win over the recorded ones, and do not replace them.
    given = plan_sources("Grace Author", ["https://other.example.org/post"], settings)
    assert [s["url"] for s in given] == ["https://other.example.org/post"]
    assert stored_links(settings, "Grace Author") == links


def test_an_author_without_recorded_links_is_refused_by_name(settings) -> None:
    with pytest.raises(ValueError, match=r"no links given for 'Nobody Here' and none recorded"):
        plan_sources("Nobody Here", None, settings)


def test_a_bad_link_is_named_and_nothing_is_recorded(settings) -> None:
    links = {"blog": ["https://blog.example.org/", "file:///etc/passwd"], "medium": ["ftp://x/y"]}
    with pytest.raises(ValueError) as err:
        record_author_links("Grace Author", links, settings)

    assert "'file:///etc/passwd'" in str(err.value) and "'ftp://x/y'" in str(err.value)
    assert "blog.example.org" not in str(err.value)
    assert stored_links(settings, "Grace Author") == {}
