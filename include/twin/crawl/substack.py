"""Substack: every public post of a publication, listed by its archive API, read from its page.

Given a publication (`name.substack.com`, a custom domain's home, `/archive`), its archive API
(`/api/v1/archive`), its feed (`/feed`) or one post (`/p/<slug>`), the crawler returns one
document per public newsletter post:

1. Listing. The archive API is paged with `offset`/`limit` (newest first) until a page comes back
   empty. Entries that are not newsletter posts ("thread", "podcast", ...) are skipped with their
   type as the reason, and so are paid-only posts, whose public page holds only a preview. When
   the API is not there (a custom domain behind a proxy, an API change), the RSS feed lists the
   posts instead; the feed holds only the latest ones, so that listing is never complete.
2. Each post page is fetched with a conditional GET (a 304 is recorded as not modified and
   nothing is parsed). The text is `div.body.markup` (else `div.available-content`) as markdown,
   without subscribe widgets, share and "Subscribe" buttons, which Substack injects into the
   body; comments and the footer are outside it.

Every post is an ARTICLE, short ones included: the archive API lists newsletter posts only
(Substack Notes are not in it), and a letter is long-form writing whatever its length.

The document URL is the page's `<link rel=canonical>` (same site), else the API's
`canonical_url`, without any query (Substack's are referral and `utm_*` tracking).
`listing_complete` is set when every archive page was read without error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from lxml import html as lxml_html

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dates import feed_entry_date, parse_date
from twin.crawl.fanout import archive_page, crawl_items, merge_outcome, read_page, reject
from twin.crawl.feeds import parse_feed
from twin.crawl.http import FetchError
from twin.crawl.markdown import html_to_markdown
from twin.crawl.pages import (
    FEED_TYPES,
    HTML_TYPES,
    JSON_TYPES,
    canonical_link,
    class_is,
    first,
    meta_content,
    node_text,
    parse_html,
    published_date,
    strip_title_suffix,
    without,
)
from twin.crawl.registry import register
from twin.crawl.urls import canonical_url
from twin.domain.documents import DocumentKind, Platform, RawDocument

PAGE_SIZE = 50  # the most Substack's archive API returns per request
MAX_PAGES = 200  # 10,000 posts: far beyond any publication, a guard against a looping API
POST_TYPES = frozenset({"newsletter"})
PUBLIC_AUDIENCES = frozenset({"everyone", "", None})
# Substack's own widgets inside a post body.
BODY_CHROME = (
    "//*[contains(@class, 'subscription-widget')]",
    "//*[contains(@class, 'subscribe-widget')]",
    f"//*[{class_is('button-wrapper')}]",
    "//*[contains(@class, 'captioned-button-wrap')]",
    f"//*[{class_is('share-dialog')}]",
    f"//*[{class_is('paywall')}]",
    "//*[contains(@class, 'image-link-expand')]",
    "//form",
)


@dataclass(frozen=True)
class Post:
    """One post found in the listing."""

    url: str
    slug: str
    title: str = ""
    subtitle: str = ""
    published_at: datetime | None = None
    post_id: int | None = None


def publication_root(url: str) -> tuple[str, str | None]:
    """The publication's root URL (no trailing slash) and, for a post link, the post URL."""
    parts = urlsplit(canonical_url(url, keep_query=False))
    path = parts.path.rstrip("/")
    post = None
    if match := re.fullmatch(r"(.*?)/api/v1/.*", path):
        path = match.group(1)
    elif match := re.fullmatch(r"(.*?)/p/[^/]+", path):
        post = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        path = match.group(1)
    elif match := re.fullmatch(r"(.*?)/(feed|archive)", path):
        path = match.group(1)
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), post


def post_slug(url: str) -> str:
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


@register
class SubstackCrawler(Crawler):
    """Substack publications and posts; see the module docstring."""

    platform = Platform.SUBSTACK
    url_patterns = (
        r"^https?://[^/]+\.substack\.com(/|$)",
        r"/api/v1/archive",
        r"/p/(?=[a-z0-9-]*[g-z-])[a-z0-9-]+/?(\?|$)",  # a slug, not Medium's hex `/p/<id>`
        r"/substack/?(\?|$)",  # a publication mounted under /substack/ (a mirror, the sample)
    )

    def crawl(self, url: str) -> CrawlOutcome:
        """Documents for every public newsletter post the link lists; see the module docstring."""
        outcome = CrawlOutcome()
        root, single = publication_root(url)
        if single:
            posts, complete = [Post(url=single, slug=post_slug(single))], False
        else:
            limit = _query_int(url, "limit") or PAGE_SIZE
            posts, complete, api_error = self._archive(root, limit, outcome)
            if posts is None:
                posts, complete = self._feed(root, outcome), False
                if not posts:  # neither the API nor the feed: say why the API failed too
                    outcome.failures.append(ItemFailure(f"{root}/api/v1/archive", api_error))
        part = crawl_items(self, posts, lambda p, out: self._post(p, url, out), lambda p: p.url)
        merge_outcome(outcome, part)
        outcome.listing_complete = complete
        return outcome

    # listing -------------------------------------------------------------------------------
    def _archive(
        self, root: str, limit: int, outcome: CrawlOutcome
    ) -> tuple[list[Post] | None, bool, str]:
        """Posts from the archive API, whether every page was read, and the API's error.

        None when the first page already fails (no API here): the caller falls back to the feed.
        """
        posts: list[Post] = []
        seen: set[object] = set()
        offset = 0
        for _ in range(MAX_PAGES):
            page_url = f"{root}/api/v1/archive?" + urlencode(
                {"sort": "new", "offset": offset, "limit": limit}
            )
            entries, error = self._read_archive_page(page_url, outcome)
            if error is not None:
                if offset == 0:
                    return None, False, error
                outcome.failures.append(ItemFailure(page_url, error))
                return posts, False, error
            assert entries is not None
            if not entries:
                return posts, True, ""
            fresh = [e for e in entries if e.get("id", e.get("slug")) not in seen]
            if not fresh:  # an API that ignores `offset` would page forever
                outcome.failures.append(ItemFailure(page_url, "archive API repeats its entries"))
                return posts, False, ""
            for entry in fresh:
                seen.add(entry.get("id", entry.get("slug")))
                post = self._archive_post(root, entry, outcome)
                if post is not None:
                    posts.append(post)
            offset += len(entries)
        outcome.failures.append(ItemFailure(root, f"archive longer than {MAX_PAGES} pages"))
        return posts, False, ""

    def _read_archive_page(
        self, page_url: str, outcome: CrawlOutcome
    ) -> tuple[list | None, str | None]:
        """One archive page's entries, or the reason it could not be read."""
        try:
            result = self.ctx.client.fetch(page_url, accept=JSON_TYPES)
        except FetchError as err:
            return None, err.reason
        outcome.fetched += 1
        try:
            entries = json.loads(result.text())
        except json.JSONDecodeError as err:
            return None, f"archive API did not return JSON: {err}"
        if not isinstance(entries, list):
            return None, "archive API did not return a list of posts"
        return [e for e in entries if isinstance(e, dict)], None

    def _archive_post(self, root: str, entry: dict, outcome: CrawlOutcome) -> Post | None:
        """The post an archive entry describes, or None (recorded as skipped) when it is not one
        to keep."""
        slug = str(entry.get("slug") or "")
        raw_url = entry.get("canonical_url") or (f"{root}/p/{slug}" if slug else "")
        if not raw_url:
            return None
        url = canonical_url(str(raw_url), root + "/", keep_query=False)
        if self.refused(url, outcome):
            return None
        kind = entry.get("type")
        if kind not in POST_TYPES:
            outcome.skipped.append(ItemFailure(url, f"not a newsletter post (type {kind!r})"))
            return None
        if entry.get("audience") not in PUBLIC_AUDIENCES:
            reason = (
                f"paid-only post (audience {entry.get('audience')!r}): only a preview is public"
            )
            outcome.skipped.append(ItemFailure(url, reason))
            return None
        post_id = entry.get("id")
        return Post(
            url=url,
            slug=slug or post_slug(url),
            title=str(entry.get("title") or "").strip(),
            subtitle=str(entry.get("subtitle") or "").strip(),
            published_at=parse_date(entry.get("post_date")),
            post_id=post_id if isinstance(post_id, int) else None,
        )

    def _feed(self, root: str, outcome: CrawlOutcome) -> list[Post]:
        """Posts from the RSS feed, when the archive API is not available."""
        feed_url = f"{root}/feed"
        result = self.fetch(feed_url, outcome, accept=FEED_TYPES)
        if result is None:
            return []
        parsed = parse_feed(result.content)
        if parsed.get("bozo") and not parsed.entries:
            error = parsed.get("bozo_exception")
            outcome.failures.append(ItemFailure(feed_url, f"malformed feed: {error}"))
            return []
        posts = []
        for entry in parsed.entries:
            if not entry.get("link"):
                continue
            url = canonical_url(entry["link"], feed_url, keep_query=False)
            if self.refused(url, outcome):
                continue
            posts.append(
                Post(
                    url=url,
                    slug=post_slug(url),
                    title=(entry.get("title") or "").strip(),
                    subtitle=(entry.get("summary") or "").strip()[:300],
                    published_at=feed_entry_date(entry),
                )
            )
        return posts

    # posts ---------------------------------------------------------------------------------
    def _post(self, post: Post, source_url: str, out: CrawlOutcome) -> RawDocument | None:
        """The post's document from its page; None (recorded) when there is nothing to keep."""
        result = self.fetch(post.url, out, conditional=True, accept=HTML_TYPES)
        if result is None:
            return None
        page, problem = read_page(self, result, read_post_page)
        if page is None:
            reject(out, post.url, problem or "no post text found in the page")
            return None
        subtitle = post.subtitle or page.subtitle
        metadata: dict = {"slug": post.slug}
        if subtitle:
            metadata["subtitle"] = subtitle
        if post.post_id is not None:
            metadata["post_id"] = post.post_id
        return self.document(
            DocumentKind.ARTICLE,
            url=page.url,
            title=post.title or page.title,
            text=page.body,
            published_at=post.published_at or page.published_at,
            source_url=source_url,
            raw_key=archive_page(self, page.url, result.content, ".html"),
            metadata=metadata,
        )


@dataclass(frozen=True)
class PostPage:
    """What a post page says: its text as markdown and the fields around it."""

    url: str
    title: str
    body: str
    subtitle: str
    published_at: datetime | None


def read_post_page(text: str, final_url: str) -> PostPage | None:
    """The post in the page `text` fetched from `final_url`; None when it holds no post text
    (pure: runs in worker processes)."""
    tree = parse_html(text)
    body = post_body(tree) if tree is not None else ""
    if tree is None or not body:
        return None
    return PostPage(
        url=canonical_link(tree, final_url) or canonical_url(final_url, keep_query=False),
        title=post_title(tree),
        body=body,
        subtitle=node_text(first(tree.xpath(f"//*[{class_is('subtitle')}]"))),
        published_at=post_date(tree),
    )


def post_body(tree: lxml_html.HtmlElement) -> str:
    """The post's text as markdown: the body markup without Substack's widgets."""
    body = first(
        tree.xpath(f"//div[{class_is('body')} and {class_is('markup')}]")
        or tree.xpath(f"//div[{class_is('available-content')}]")
    )
    if body is None:
        return ""
    return html_to_markdown(without(body, BODY_CHROME))


def post_title(tree: lxml_html.HtmlElement) -> str:
    """The title on the page: `h1.post-title`, else og:title / <title> without the byline."""
    if title := node_text(first(tree.xpath(f"//h1[{class_is('post-title')}]"))):
        return title
    title = meta_content(tree, "og:title", "twitter:title") or node_text(
        first(tree.xpath("//title"))
    )
    title = strip_title_suffix(title, meta_content(tree, "og:site_name"))
    return re.sub(r"\s+-\s+by\s+[^-]+$", "", title)  # "<title> - by <author>"


def post_date(tree: lxml_html.HtmlElement) -> datetime | None:
    """The publication date on the page (meta tags, JSON-LD, the post header's date)."""
    return published_date(tree) or parse_date(
        first(tree.xpath(f"//*[{class_is('post-date')}]/@title"))
    )


def _query_int(url: str, name: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get(name)
    if values and values[0].isdigit() and int(values[0]) > 0:
        return min(int(values[0]), PAGE_SIZE)
    return None
