"""The Medium, Substack and blog crawlers on the sample author's site, faults included."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from sample_author.blog import COMMENT_POOL
from twin.crawl.base import CrawlContext, CrawlOutcome
from twin.crawl.blog import BlogCrawler, parse_sitemap
from twin.crawl.dates import parse_date
from twin.crawl.dispatch import crawler_for
from twin.crawl.http import PoliteClient
from twin.crawl.markdown import html_to_markdown
from twin.crawl.medium import MediumCrawler
from twin.crawl.pages import parse_html
from twin.crawl.policy import CrawlPolicy
from twin.crawl.pool import Extractor
from twin.crawl.substack import SubstackCrawler
from twin.crawl.urls import canonical_url
from twin.domain.documents import DocumentKind, Platform
from twin.store.object_store import LocalObjectStore

pytestmark = pytest.mark.integration

MEDIUM_FEED = "/medium/feed/@ada-lindqvist"
SUBSTACK_HOME = "/substack/"
SITEMAP = "/sitemap.xml"


@pytest.fixture(scope="module")
def client(sample_site) -> Iterator[PoliteClient]:
    policy = CrawlPolicy(
        allow_private_hosts=(f"127.0.0.1:{sample_site.server.port}",),
        per_host_rate=200,
        per_host_concurrency=8,
        backoff_base_s=0.05,
    )
    with PoliteClient(policy) as client:
        yield client


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> LocalObjectStore:
    return LocalObjectStore(tmp_path_factory.mktemp("objects"))


@pytest.fixture(scope="module")
def crawl(client, archive, sample_site) -> Callable[..., CrawlOutcome]:
    """Crawl one sample path with a crawler class; `since` gives the validators of a crawl."""

    def run(crawler: type, path: str, since: CrawlOutcome | None = None) -> CrawlOutcome:
        known = since.validators if since else {}
        ctx = CrawlContext(
            client,
            archive,
            "Ada Lindqvist",
            known_validators=lambda urls: {u: known[u] for u in urls if u in known},
        )
        return crawler(ctx).crawl(sample_site.server.url(path))

    return run


@pytest.fixture(scope="module")
def medium(crawl) -> CrawlOutcome:
    return crawl(MediumCrawler, MEDIUM_FEED)


@pytest.fixture(scope="module")
def substack(crawl) -> CrawlOutcome:
    return crawl(SubstackCrawler, SUBSTACK_HOME)


@pytest.fixture(scope="module")
def blog_crawl(crawl, sample_site) -> tuple[CrawlOutcome, dict[str, int]]:
    """The sitemap crawl, and the server's request count per path right after it."""
    outcome = crawl(BlogCrawler, SITEMAP)
    return outcome, dict(sample_site.server.hits)


@pytest.fixture(scope="module")
def blog(blog_crawl) -> CrawlOutcome:
    return blog_crawl[0]


def expected(sample_site, platform: str) -> dict[str, object]:
    """Absolute URL → manifest entry of each document the platform should yield."""
    docs = sample_site.manifest.platforms[platform].documents
    return {sample_site.server.url(d.url): d for d in docs}


def assert_matches_manifest(outcome: CrawlOutcome, sample_site, platform: str, link: str) -> None:
    want = expected(sample_site, platform)
    got = {d.url: d for d in outcome.documents}
    assert len(outcome.documents) == sample_site.manifest.platforms[platform].expected_documents
    assert set(got) == set(want)
    for url, doc in got.items():
        assert doc.title == want[url].title
        assert doc.published_at == want[url].date, url
        assert doc.platform == Platform(platform) and doc.kind == DocumentKind.ARTICLE
        assert doc.author == "Ada Lindqvist" and doc.text.strip()
        assert "?" not in doc.url and "#" not in doc.url
        assert doc.source_url == sample_site.server.url(link) and doc.raw_key is not None
    assert outcome.listing_complete


# Medium ----------------------------------------------------------------------------------------
def test_medium_feed_and_profile_give_all_twelve_stories(medium, sample_site, archive) -> None:
    assert_matches_manifest(medium, sample_site, "medium", MEDIUM_FEED)
    assert medium.failures == []
    lora = next(d for d in medium.documents if d.title == "LoRA on a budget")
    assert "Read the key from the environment, and add a secret scanner to CI." in lora.text
    assert "```python\nfrom openai import OpenAI" in lora.text
    assert "## The short version" in lora.text
    assert lora.metadata["story_id"] == "d1586135a5fe"
    assert archive.get(lora.raw_key).startswith(b"<!doctype html>")
    # Every story, the two older than the feed's ten included, is read from its own page.
    assert {d.metadata["text_source"] for d in medium.documents} == {"page"}


def test_medium_text_is_the_story_without_chrome_or_other_writers(medium) -> None:
    for doc in medium.documents:
        assert not doc.text.startswith(doc.title)
        for chrome in (
            "Recommended from Medium",
            "Lars Nyberg",
            "Maya Chen",
            "Follow",
            "min read",
            "Written by",
            "Text to speech",
            "Sign in",
        ):
            assert chrome not in doc.text, (doc.url, chrome)


def test_medium_profile_link_gives_the_same_stories(crawl, medium, sample_site) -> None:
    outcome = crawl(MediumCrawler, "/medium/@ada-lindqvist")
    assert {d.url for d in outcome.documents} == set(expected(sample_site, "medium"))
    assert {d.content_hash for d in outcome.documents} == {d.content_hash for d in medium.documents}


def test_malformed_medium_feed_is_recorded_not_raised(crawl, sample_site) -> None:
    outcome = crawl(MediumCrawler, "/medium/feed/@broken-author")
    reasons = {f.url: f.reason for f in outcome.failures}
    assert reasons[sample_site.server.url("/medium/feed/@broken-author")].startswith(
        "malformed feed: "
    )
    assert outcome.documents == [] and not outcome.listing_complete


def test_unusable_story_page_falls_back_to_the_feed_text(crawl, medium, sample_site) -> None:
    path = "/medium/@ada-lindqvist/lora-on-a-budget-d1586135a5fe"
    page = sample_site.server.file_for(path)
    original = page.read_bytes()
    page.write_bytes(original[: len(original) // 2])  # cut short in transit
    try:
        outcome = crawl(MediumCrawler, MEDIUM_FEED)
    finally:
        page.write_bytes(original)
    lora = next(d for d in outcome.documents if d.url == sample_site.server.url(path))
    assert lora.metadata["text_source"] == "feed"
    assert lora.metadata["page_error"].startswith("truncated HTML")
    assert lora.content_hash == next(d.content_hash for d in medium.documents if d.url == lora.url)
    assert outcome.failures == [] and lora.url not in outcome.validators  # retried next time


# Substack --------------------------------------------------------------------------------------
def test_substack_archive_gives_every_letter_and_skips_the_thread(substack, sample_site) -> None:
    assert_matches_manifest(substack, sample_site, "substack", SUBSTACK_HOME)
    assert substack.failures == []
    thread = sample_site.server.url("/substack/p/open-thread-whats-in-your-stack")
    assert [(s.url, "thread" in s.reason) for s in substack.skipped] == [(thread, True)]
    assert sample_site.server.hits.get("/substack/p/open-thread-whats-in-your-stack", 0) == 0
    for doc in substack.documents:
        assert doc.text.startswith("Hi friends,") and "— Ada" in doc.text
        for widget in (
            "Thanks for reading",
            "Subscribe",
            "Type your email",
            "Restack",
            "Discussion about this post",
        ):
            assert widget not in doc.text, (doc.url, widget)
    pgvector = next(d for d in substack.documents if d.metadata["slug"] == "a-year-of-pgvector")
    assert "Median query time for the fused search is about 12 milliseconds" in pgvector.text


@pytest.mark.parametrize(
    "path", ["/substack/api/v1/archive?sort=new&offset=0&limit=4", "/substack/feed"]
)
def test_substack_archive_and_feed_links_page_through_the_api(crawl, sample_site, path) -> None:
    outcome = crawl(SubstackCrawler, path)
    assert {d.url for d in outcome.documents} == set(expected(sample_site, "substack"))
    assert outcome.listing_complete


def test_substack_falls_back_to_the_feed_without_the_api(crawl, sample_site) -> None:
    api = sample_site.server.file_for("/substack/api/v1/archive")
    original = api.read_bytes()
    api.write_bytes(b"<html>Not found</html>")  # answered as JSON content type, but not JSON
    try:
        outcome = crawl(SubstackCrawler, SUBSTACK_HOME)
    finally:
        api.write_bytes(original)
    assert {d.url for d in outcome.documents} == set(expected(sample_site, "substack"))
    assert outcome.failures == [] and not outcome.listing_complete  # a feed is never all


# blog ------------------------------------------------------------------------------------------
def test_blog_sitemap_gives_every_article(blog, sample_site) -> None:
    assert_matches_manifest(blog, sample_site, "blog", SITEMAP)
    tuesday = next(d for d in blog.documents if d.title == "The Tuesday test")
    assert "could a teammate who has never seen it rerun an arbitrary past interval" in tuesday.text
    assert tuesday.text.count("## The short version") == 1
    assert tuesday.metadata["tags"] == ["airflow", "operations", "pipelines"]


@pytest.mark.parametrize(
    ("crawler", "path", "platform", "reference"),
    [
        (BlogCrawler, SITEMAP, "blog", "blog"),
        (MediumCrawler, MEDIUM_FEED, "medium", "medium"),
        (SubstackCrawler, SUBSTACK_HOME, "substack", "substack"),
    ],
)
def test_pages_read_in_worker_processes_give_the_same_documents(
    client, archive, sample_site, request, crawler, path, platform, reference
) -> None:
    by_url = {d.url: d for d in request.getfixturevalue(reference).documents}
    with Extractor(2) as extractor:
        ctx = CrawlContext(client, archive, "Ada Lindqvist", extractor=extractor)
        pooled = crawler(ctx).crawl(sample_site.server.url(path))

    if platform == "blog":
        assert_matches_manifest(pooled, sample_site, "blog", SITEMAP)
    expected = sample_site.manifest.platforms[platform].expected_documents
    assert len(pooled.documents) == expected
    assert set(by_url) == {d.url for d in pooled.documents}
    assert all(
        (d.title, d.text, d.published_at)
        == (by_url[d.url].title, by_url[d.url].text, by_url[d.url].published_at)
        for d in pooled.documents
    )


def test_blog_text_has_no_comments_banners_or_share_buttons(blog) -> None:
    for doc in blog.documents:
        for comment in COMMENT_POOL:
            assert comment.text[:60] not in doc.text and comment.name not in doc.text
        for chrome in (
            "cookies",
            "Accept all",
            "Share this post",
            "Copy link",
            "Leave a comment",
            "Get The Boring Pipeline by email",
            "Opinions are my own",
        ):
            assert chrome not in doc.text, (doc.url, chrome)


def test_blog_defects_are_per_item_failures_and_skips(blog_crawl, sample_site) -> None:
    blog, hits = blog_crawl
    base = sample_site.base_url
    failed = {f.url.removeprefix(base): f.reason for f in blog.failures}
    skipped = {s.url.removeprefix(base): s.reason for s in blog.skipped}

    assert "500" in failed.pop("/blog/broken-500/")
    assert failed.pop("/blog/truncated/").startswith("truncated HTML")
    assert "redirect loop" in failed.pop("/blog/loop-a/")
    assert "larger than" in failed.pop("/blog/huge/")
    assert "refused" in failed["/blog/go-internal/"] and "metadata" in failed.pop(
        "/blog/go-internal/"
    )
    assert "refused" in failed["/blog/go-private/"] and "private" in failed.pop("/blog/go-private/")
    assert failed == {}
    assert skipped == {"/blog/drafts/feature-stores/": "disallowed by robots.txt"}
    assert hits.get("/blog/drafts/feature-stores/", 0) == 0
    assert hits.get("/blog/", 0) == hits.get("/blog/page/2/", 0) == 0  # listings: not fetched


def test_blog_retries_busy_pages_and_decodes_a_mislabelled_charset(blog, sample_site) -> None:
    urls = {d.url.removeprefix(sample_site.base_url): d for d in blog.documents}
    assert sample_site.server.status_counts[("/blog/flaky/", 429)] == 1
    assert sample_site.server.status_counts[("/blog/unstable/", 503)] == 1
    assert urls["/blog/flaky/"].text and urls["/blog/unstable/"].text
    charset = urls["/blog/wrong-charset/"]
    assert charset.title == "A café, a naïve model and a long train ride"
    assert all(word in charset.text for word in ("café", "naïve", "smörgåsbord"))
    assert "\ufffd" not in charset.text


def test_blog_index_and_pagination_give_the_same_articles(crawl, sample_site) -> None:
    outcome = crawl(BlogCrawler, "/blog/")
    assert {d.url for d in outcome.documents} == set(expected(sample_site, "blog"))
    assert outcome.failures == [] and outcome.listing_complete


def test_site_root_and_robots_txt_lead_to_the_sitemap(crawl, blog, sample_site) -> None:
    for path in ("/", "/robots.txt"):
        outcome = crawl(BlogCrawler, path)
        assert {d.url for d in outcome.documents} == set(expected(sample_site, "blog"))
        assert {f.url for f in outcome.failures} == {f.url for f in blog.failures} != set()


def test_one_article_link_gives_that_article(crawl, blog, sample_site) -> None:
    outcome = crawl(BlogCrawler, "/blog/2023/tuesday-test/")  # an old URL: 301 to the new one
    (doc,) = outcome.documents
    assert doc.url == sample_site.server.url("/blog/the-tuesday-test/")
    assert doc.content_hash == next(d.content_hash for d in blog.documents if d.url == doc.url)


# incremental -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("crawler", "path", "first"),
    [
        (MediumCrawler, MEDIUM_FEED, "medium"),
        (SubstackCrawler, SUBSTACK_HOME, "substack"),
        (BlogCrawler, SITEMAP, "blog"),
    ],
)
def test_second_crawl_with_validators_parses_nothing(crawl, request, crawler, path, first) -> None:
    before: CrawlOutcome = request.getfixturevalue(first)
    again = crawl(crawler, path, since=before)
    assert before.documents and again.documents == []
    assert {d.url for d in before.documents} <= set(again.not_modified)
    assert {f.url for f in again.failures} == {f.url for f in before.failures}
    assert again.listing_complete


def test_an_edited_page_is_the_only_one_parsed_again(crawl, blog, sample_site) -> None:
    page = sample_site.server.file_for("/blog/keep-a-decision-log/")
    original = page.read_bytes()
    sample_site.server.mutate(
        "/blog/keep-a-decision-log/", "It is the most", "It is still the most"
    )
    try:
        again = crawl(BlogCrawler, SITEMAP, since=blog)
    finally:
        page.write_bytes(original)  # later tests compare with the unedited site
    (doc,) = again.documents
    assert doc.url == sample_site.server.url("/blog/keep-a-decision-log/")
    assert "It is still the most" in doc.text


# shared helpers --------------------------------------------------------------------------------
def test_links_go_to_the_right_crawler(sample_site) -> None:
    for path, crawler in [
        (MEDIUM_FEED, MediumCrawler),
        ("/medium/@ada-lindqvist", MediumCrawler),
        (SUBSTACK_HOME, SubstackCrawler),
        (SITEMAP, BlogCrawler),
        ("/blog/", BlogCrawler),
    ]:
        assert crawler_for(sample_site.server.url(path)) is crawler, path
    assert crawler_for("https://medium.com/@someone") is MediumCrawler
    assert crawler_for("https://medium.com/p/2a8b7a429c6d") is MediumCrawler
    assert crawler_for("https://someone.medium.com/") is MediumCrawler
    assert crawler_for("https://boring.substack.com/") is SubstackCrawler
    assert crawler_for("https://example.com/p/a-letter") is SubstackCrawler
    assert crawler_for("https://example.com/posts/hello/") is BlogCrawler


def test_canonical_urls_drop_tracking_and_fragments() -> None:
    assert (
        canonical_url("HTTPS://Example.COM:443/a//b/?utm_source=x&id=3&source=rss#top")
        == "https://example.com/a/b/?id=3"
    )
    assert canonical_url("https://example.com") == "https://example.com/"
    assert canonical_url("/p/x?r=abc", "https://a.substack.com/", keep_query=False) == (
        "https://a.substack.com/p/x"
    )


def test_sitemap_index_and_gzipped_sitemaps_are_read() -> None:
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    index = f"<sitemapindex {ns}><sitemap><loc>https://a.example/posts.xml.gz</loc></sitemap>"
    kind, locs, error = parse_sitemap((index + "</sitemapindex>").encode())
    assert (kind, locs, error) == ("sitemapindex", ["https://a.example/posts.xml.gz"], None)
    urlset = f"<urlset {ns}><url><loc> https://a.example/p/1/ </loc></url></urlset>"
    assert parse_sitemap(gzip.compress(urlset.encode()))[1] == ["https://a.example/p/1/"]
    assert parse_sitemap(b"<urlset><url><loc>x")[2].startswith("malformed sitemap")
    entity = b'<!DOCTYPE u [<!ENTITY e SYSTEM "file:///etc/passwd">]><urlset><url><loc>&e;</loc>'
    assert "root:" not in str(parse_sitemap(entity + b"</url></urlset>"))


def test_dates_parse_to_utc() -> None:
    midnight = datetime(2024, 8, 13, tzinfo=UTC)
    assert parse_date("Tue, 13 Aug 2024 00:00:00 GMT") == midnight
    assert parse_date("2024-08-13T00:00:00Z") == midnight
    assert parse_date("16 January 2024").isoformat() == "2024-01-16T00:00:00+00:00"
    assert parse_date("2024-06-01T02:00:00+02:00").hour == 0
    assert parse_date("not a date") is None and parse_date("") is None


def test_html_to_markdown_keeps_structure() -> None:
    tree = parse_html(
        "<html><body><article><h2>Why</h2><p>A <strong>bold</strong> <em>claim</em> with"
        " <code>x = 1</code> and <a href='/y'>a link</a>.</p><ul><li>one<ul><li>inner</li>"
        "</ul></li><li><p>two</p></li></ul><ol start='3'><li>three</li></ol>"
        "<pre><code class='language-sql'>SELECT 1;\n\nSELECT 2;</code></pre>"
        "<blockquote><p>quoted</p></blockquote><script>alert(1)</script></article></body></html>"
    )
    assert html_to_markdown(tree.xpath("//article")[0]) == (
        "## Why\n\nA **bold** *claim* with `x = 1` and a link.\n\n"
        "- one\n  - inner\n- two\n\n3. three\n\n```sql\nSELECT 1;\n\nSELECT 2;\n```\n\n> quoted"
    )
