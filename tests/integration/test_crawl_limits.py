"""The blog crawler's listing limits: sitemaps and index pages are each read once, in order, up
to a limit; what lies beyond it is a recorded failure and the listing is not complete.

A local site (real HTTP on loopback) serves the listings and articles; the limits are lowered so
that a handful of pages reach them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.hostile_site import HostileSite, Page
from twin.crawl import blog
from twin.crawl.base import CrawlContext, CrawlOutcome
from twin.crawl.blog import BlogCrawler
from twin.crawl.http import PoliteClient
from twin.crawl.policy import CrawlPolicy
from twin.store.object_store import LocalObjectStore

pytestmark = pytest.mark.integration

XML = {"Content-Type": "application/xml"}
PROSE = "A pipeline that says what it expects is one a tired engineer can still trust. " * 6


def article(title: str) -> Page:
    return Page(
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article>"
        f"<h1>{title}</h1><p>{PROSE}</p><p>{PROSE}</p></article></body></html>".encode()
    )


def index(links: list[str]) -> Page:
    """A listing page linking `links` (articles below it and numbered pagination)."""
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return Page(
        f"<!DOCTYPE html><html><body><main><ul>{anchors}</ul></main></body></html>".encode()
    )


def urlset(locs: list[str], root: str = "urlset", tag: str = "url") -> Page:
    items = "".join(f"<{tag}><loc>{loc}</loc></{tag}>" for loc in locs)
    return Page(f"<{root}>{items}</{root}>".encode(), headers=XML)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[HostileSite]:
    with HostileSite(tmp_path_factory.mktemp("limits")) as server:
        yield server


def crawl(site: HostileSite, url: str, objects: Path) -> CrawlOutcome:
    policy = CrawlPolicy(allow_private_hosts=(f"127.0.0.1:{site.port}",), per_host_rate=500.0)
    with PoliteClient(policy) as client:
        return BlogCrawler(CrawlContext(client, LocalObjectStore(objects), "Ada")).crawl(url)


def test_sitemaps_beyond_the_limit_are_a_failure_and_the_rest_is_crawled(
    site, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(blog, "MAX_SITEMAPS", 3)  # the index and two of its three sitemaps
    for n in (1, 2, 3):
        site.routes[f"/sm/post-{n}"] = article(f"Post {n}")
        site.routes[f"/sm/map-{n}.xml"] = urlset([site.url(f"/sm/post-{n}")])
    maps = [site.url(f"/sm/map-{n}.xml") for n in (1, 2, 3, 1)]  # one listed twice
    site.routes["/sm/index.xml"] = urlset(maps, root="sitemapindex", tag="sitemap")

    outcome = crawl(site, site.url("/sm/index.xml"), tmp_path)

    assert sorted(d.url for d in outcome.documents) == [
        site.url("/sm/post-1"),
        site.url("/sm/post-2"),
    ]
    assert [(f.url, f.reason) for f in outcome.failures] == [
        (site.url("/sm/map-3.xml"), "more than 3 sitemaps")
    ]
    assert not outcome.listing_complete
    assert site.hits["/sm/map-3.xml"] == 0 and site.hits["/sm/map-1.xml"] == 1


def test_index_pages_beyond_the_limit_are_a_failure_and_the_rest_is_crawled(
    site, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(blog, "MAX_INDEX_PAGES", 2)
    for n in (1, 2, 3):
        site.routes[f"/ix/a-{n}"] = article(f"Index article {n}")
        site.routes[f"/ix/b-{n}"] = article(f"Other article {n}")
    site.routes["/ix/"] = index(["/ix/a-1", "/ix/b-1", "/ix/page/2/"])
    site.routes["/ix/page/2/"] = index(["/ix/a-2", "/ix/b-2", "/ix/page/3/"])
    site.routes["/ix/page/3/"] = index(["/ix/a-3", "/ix/b-3"])

    outcome = crawl(site, site.url("/ix/"), tmp_path)

    expected = {site.url(f"/ix/{p}-{n}") for p in "ab" for n in (1, 2)}
    assert {d.url for d in outcome.documents} == expected
    assert [(f.url, f.reason) for f in outcome.failures] == [
        (site.url("/ix/"), "more than 2 index pages")
    ]
    assert not outcome.listing_complete
    assert site.hits["/ix/page/3/"] == 0


def test_an_index_that_reaches_the_limit_with_every_page_read_is_complete(
    site, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(blog, "MAX_INDEX_PAGES", 3)
    for n in (1, 2, 3):
        site.routes[f"/full/a-{n}"] = article(f"Full article {n}")
        site.routes[f"/full/b-{n}"] = article(f"Full other {n}")
    # The first page links both further pages, the second links the third again: the third is
    # queued twice and read once, which is the whole listing.
    site.routes["/full/"] = index(["/full/a-1", "/full/b-1", "/full/page/2/", "/full/page/3/"])
    site.routes["/full/page/2/"] = index(["/full/a-2", "/full/b-2", "/full/page/3/"])
    site.routes["/full/page/3/"] = index(["/full/a-3", "/full/b-3"])

    outcome = crawl(site, site.url("/full/"), tmp_path)

    assert len(outcome.documents) == 6
    assert outcome.failures == []
    assert outcome.listing_complete
    assert site.hits["/full/page/3/"] == 1
