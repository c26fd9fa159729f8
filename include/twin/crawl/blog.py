"""Custom article sites (a personal blog, a company's engineering blog): the dispatcher's fallback.

Given a link, the crawler finds the site's articles one of three ways:

- a sitemap (`.../sitemap.xml`, gzipped or not, also sitemap index files) or `robots.txt`: every
  page the sitemaps list, on the sitemap's own site;
- the site's root (`https://example.com/`): the sitemaps robots.txt names (else `/sitemap.xml`),
  and when there are none, the home page as an index;
- any other page: if it is an index (see `is_listing`: it links two or more pages below its
  own path, or calls itself a website and shows post cards or pagination), its article links
  and every page reached by pagination (`rel=next`, `/page/N/`, `?page=N`); otherwise the page
  is one article.

Listing pages are not documents. From a sitemap, a page whose path is the folder of other listed
pages (`/blog/` above `/blog/post/`), a pagination page or a tag/category/author page is not
fetched at all; a fetched page that turns out to be an index is skipped as a listing.
robots.txt is enforced by the client: a disallowed page is skipped and never requested.

Each article is fetched with a conditional GET (a 304 is recorded as not modified and nothing is
parsed). The text is extracted by trafilatura as markdown (its fast pass, or its full cascade where
the fast result falls short: see `article_text`), with comments excluded and, before that, site
chrome pruned by XPath: comment sections, cookie/consent banners, navigation, share
buttons, newsletter boxes, related posts, forms and hidden elements. Title, date and canonical URL
come from the page's markup (first `<h1>` of the article, `article:published_time`, JSON-LD,
`<time>`, `<link rel=canonical>`), trafilatura's metadata filling gaps.

Rules for broken pages, each one item's failure while the rest goes on:
- truncated HTML: a page that opens `<html` but ends before `</html>`, or ends inside a tag, is
  not stored, even though trafilatura might still find text in it (see `truncation_reason`);
- a page with no extractable text fails with "no article text found";
- non-HTML answers, oversize bodies, redirect loops, redirects to private addresses and HTTP
  errors fail with the client's reason; 429/503 are retried by the client.

Two listed URLs that end at the same canonical page (an old URL that 301s to the new one) give
one document. `listing_complete` is set when every sitemap (or every index page) was read.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from lxml import etree
from lxml import html as lxml_html
from protego import Protego
from trafilatura.metadata import extract_metadata
from trafilatura.utils import load_html

from twin.crawl.article_text import extract_markdown
from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dates import parse_date
from twin.crawl.fanout import archive_page, crawl_items, merge_outcome, read_page, reject
from twin.crawl.http import FetchError, FetchResult
from twin.crawl.markdown import tidy_markdown
from twin.crawl.pages import (
    FEED_TYPES,
    HTML_TYPES,
    canonical_link,
    first,
    meta_content,
    node_text,
    parse_html,
    published_date,
    strip_title_suffix,
)
from twin.crawl.registry import register
from twin.crawl.urls import canonical_url, same_site
from twin.domain.documents import DocumentKind, Platform, RawDocument

MAX_SITEMAPS = 200
MAX_INDEX_PAGES = 500
MAX_SITEMAP_BYTES = 50_000_000  # the sitemaps protocol's limit for an uncompressed file
SITEMAP_TYPES = (*FEED_TYPES, "application/gzip", "application/x-gzip", "text/plain")
SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
LISTING_TYPES = frozenset({"website", "blog", "profile"})
PAGINATION = re.compile(r"/page/\d+/?$|[?&](page|paged)=\d+")  # not WordPress' `?p=<post id>`
TAXONOMY = re.compile(r"/(tags?|categor(y|ies)|topics?|authors?|archives?|search|feed)(/|$)")
NOT_HTML = re.compile(
    r"\.(pdf|jpe?g|png|gif|webp|svg|ico|css|js|json|xml|gz|zip|tar|mp[34]|mov|avi|woff2?|ttf"
    r"|eot|txt|csv|docx?|xlsx?|pptx?|epub)$",
    re.I,
)
# Site chrome that must never reach the text: others' comments, banners, navigation, widgets.
# One XPath predicate over every element (the page is walked once, not once per kind of chrome);
# the tests of an attribute sit behind its presence, which most elements lack.
CHROME = (
    "self::nav or self::aside or self::form or self::button or self::footer or self::iframe",
    "self::header and not(ancestor::article)",
    "@hidden or @aria-hidden='true'",
    "@role and (@role='navigation' or @role='complementary' or @role='contentinfo'"
    " or @role='dialog' or @role='alertdialog' or @role='banner')",
    "@id and (@id='comments' or @id='respond' or @id='disqus_thread'"
    " or starts-with(@id, 'comment') or contains(@id, 'cookie'))",
    "@class and (contains(@class, 'comment')"
    " or contains(@class, 'cookie') or contains(@class, 'consent') or contains(@class, 'gdpr')"
    " or contains(@class, 'share-') or contains(@class, 'sharing')"
    " or contains(@class, 'sharedaddy') or contains(@class, 'social-share')"
    " or contains(concat(' ', @class, ' '), ' share ')"
    " or contains(@class, 'newsletter') or contains(@class, 'subscribe')"
    " or contains(@class, 'related-posts') or contains(@class, 'post-nav'))",  # post-navigation
)
BOILERPLATE = " or ".join(f"({rule})" for rule in CHROME)  # the elements pruned before extraction


@register
class BlogCrawler(Crawler):
    """Articles of a custom site by sitemap or index pages; see the module docstring."""

    platform = Platform.BLOG
    url_patterns = ()  # the dispatcher's fallback: it never needs to claim a URL

    def crawl(self, url: str) -> CrawlOutcome:
        """Documents for the site's articles the link leads to; see the module docstring."""
        outcome = CrawlOutcome()
        entry = canonical_url(url)
        path = urlsplit(entry).path
        articles: list[str] = []
        complete = False
        if path == "/robots.txt" or is_sitemap_url(entry):
            sitemaps = self._robots_sitemaps(entry, outcome) if path == "/robots.txt" else [entry]
            if sitemaps:
                articles, complete = self._from_sitemaps(sitemaps, outcome)
        elif path == "/" and (sitemaps := self._robots_sitemaps(entry, None)):
            articles, complete = self._from_sitemaps(sitemaps, outcome)
        else:
            found = self._from_index(entry, url, outcome)
            if not isinstance(found, tuple):  # the link was one article (None: it failed)
                outcome.documents += [found] if found is not None else []
                return outcome
            articles, complete = found
        part = crawl_items(self, articles, lambda a, out: self._article(a, url, out), lambda a: a)
        merge_outcome(outcome, part)
        outcome.listing_complete = complete
        return outcome

    # sitemaps ------------------------------------------------------------------------------
    def _robots_sitemaps(self, url: str, outcome: CrawlOutcome | None) -> list[str]:
        """The sitemaps robots.txt names, else `/sitemap.xml` when it exists.

        With `outcome` None this is a probe: nothing is recorded when there are none.
        """
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        robots = f"{origin}/robots.txt"
        try:
            result = self.ctx.client.fetch(robots, accept=("text/plain",))
            listed = list(Protego.parse(result.text()).sitemaps)
        except FetchError:
            listed = []
        found = [canonical_url(sitemap.strip(), robots) for sitemap in listed if sitemap.strip()]
        found = [s for s in dict.fromkeys(found) if same_site(s, origin)]
        if found:
            return found
        fallback = f"{origin}/sitemap.xml"
        try:
            self.ctx.client.fetch(fallback, accept=SITEMAP_TYPES)
        except FetchError as err:
            if outcome is not None:
                outcome.failures.append(ItemFailure(robots, f"no sitemap found: {err.reason}"))
            return []
        return [fallback]

    def _from_sitemaps(self, sitemaps: list[str], outcome: CrawlOutcome) -> tuple[list[str], bool]:
        """Article URLs of the sitemaps (index files followed), and whether all were read."""
        queue = list(sitemaps)
        done: set[str] = set()
        listed: list[str] = []
        complete = True
        for sitemap, result in self._fetch_each(queue, done, MAX_SITEMAPS, SITEMAP_TYPES, outcome):
            if result is None:
                complete = False
                continue
            kind, locs, error = parse_sitemap(result.content)
            if error:
                outcome.failures.append(ItemFailure(sitemap, error))
                complete = False
                continue
            for loc in locs:
                url = canonical_url(loc, sitemap)
                if not same_site(url, sitemap):
                    outcome.skipped.append(ItemFailure(url, "outside the sitemap's site"))
                elif kind == "sitemapindex":
                    queue.append(url)
                elif url not in listed:
                    listed.append(url)
        if queue:
            outcome.failures.append(ItemFailure(queue[0], f"more than {MAX_SITEMAPS} sitemaps"))
            complete = False
        return self._articles_of(listed, outcome), complete

    def _articles_of(self, listed: list[str], outcome: CrawlOutcome) -> list[str]:
        """The listed URLs that can be articles: no folders of other pages, no listings."""
        folders: set[str] = set()
        for url in listed:
            path = urlsplit(url).path
            for cut in range(len(path) - 1, 0, -1):
                if path[cut - 1] == "/":
                    folders.add(path[:cut])
        articles = []
        for url in listed:
            parts = urlsplit(url)
            if NOT_HTML.search(parts.path):
                outcome.skipped.append(ItemFailure(url, "not an HTML page"))
            elif parts.path in folders or parts.path == "/" or is_listing_url(url):
                continue  # an index of other listed pages: not an article, not fetched
            else:
                articles.append(url)
        return articles

    # index pages ---------------------------------------------------------------------------
    def _from_index(
        self, entry: str, source_url: str, outcome: CrawlOutcome
    ) -> tuple[list[str], bool] | RawDocument | None:
        """Article links of an index and its pagination, or the document when `entry` is an
        article itself (None when that article failed)."""
        prefix = folder_of(urlsplit(entry).path)
        queue, visited = [entry], set()
        articles: list[str] = []
        complete = True
        for page, result in self._fetch_each(queue, visited, MAX_INDEX_PAGES, HTML_TYPES, outcome):
            if result is None:
                complete = False
                continue
            final = canonical_url(result.final_url)
            visited.add(final)
            tree = parse_html(result.text())
            if tree is None:
                outcome.failures.append(ItemFailure(page, "empty index page"))
                complete = False
                continue
            links = candidate_links(tree, final, prefix)
            if page == entry and not is_listing(tree, final):
                return self._document(entry, result, source_url, outcome)
            for link in links:
                if link not in articles and link not in visited:
                    articles.append(link)
            queue += [p for p in pagination_links(tree, final, prefix) if p not in visited]
        if queue:
            outcome.failures.append(ItemFailure(entry, f"more than {MAX_INDEX_PAGES} index pages"))
            complete = False
        return [a for a in articles if a not in visited], complete

    def _fetch_each(
        self,
        queue: list[str],
        seen: set[str],
        limit: int,
        accept: tuple[str, ...],
        outcome: CrawlOutcome,
    ) -> Iterator[tuple[str, FetchResult | None]]:
        """Each URL of `queue` not in `seen`, in order, with its fetch (None: failed, recorded);
        the caller may append to `queue` and add to `seen` meanwhile. Stops once `limit` URLs
        were seen, leaving the next unseen URL at the head of `queue`."""
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            if len(seen) >= limit:
                queue.insert(0, url)
                return
            seen.add(url)
            yield url, self.fetch(url, outcome, accept=accept)

    # articles ------------------------------------------------------------------------------
    def _article(self, url: str, source_url: str, out: CrawlOutcome) -> RawDocument | None:
        result = self.fetch(url, out, conditional=True, accept=HTML_TYPES)
        if result is None:
            return None
        return self._document(url, result, source_url, out)

    def _document(
        self, url: str, result: FetchResult, source_url: str, out: CrawlOutcome
    ) -> RawDocument | None:
        """The article in `result`, or None with the reason recorded on `out`.

        The cheap checks run here; parsing and extraction (`read_article`, CPU-bound) run in the
        crawl's process pool when there is one.
        """
        parts, problem = read_page(self, result, read_article)
        if problem is not None:
            reject(out, url, problem)
            return None
        if isinstance(parts, Rejection):
            reject(out, url, parts.reason, skip=parts.skip)
            return None
        return self.document(
            DocumentKind.ARTICLE,
            url=parts.url,
            title=parts.title,
            text=parts.text,
            published_at=parts.published_at,
            source_url=source_url,
            raw_key=archive_page(self, parts.url, result.content, ".html"),
            metadata=parts.metadata,
        )


@dataclass(frozen=True)
class Article:
    """What a page yields: its canonical URL, title, markdown text, date and metadata."""

    url: str
    title: str
    text: str
    published_at: datetime | None
    metadata: dict


@dataclass(frozen=True)
class Rejection:
    """Why a page yields no article; `skip` when that is the site's design (a listing)."""

    reason: str
    skip: bool = False


def read_article(text: str, final_url: str) -> Article | Rejection:
    """The article in the page `text` fetched from `final_url` (pure: runs in worker processes).

    The page is parsed once, by trafilatura's parser (comments and processing instructions
    dropped), and that tree serves the listing check, the canonical link, the heading and the
    date (read first), then trafilatura's metadata and extraction (which copies it). A page
    trafilatura cannot parse is read by lxml's parser and handed to trafilatura as text."""
    source = load_html(text) if text.strip() else None
    tree = source if source is not None else parse_html(text)
    if tree is None:
        return Rejection("empty page")
    if is_listing(tree, final_url):
        return Rejection("listing page, not an article", skip=True)
    canonical = canonical_link(tree, final_url) or canonical_url(final_url)
    heading, published = article_title(tree), published_date(tree)
    page = text if source is None else source  # what trafilatura reads: its tree, else the text
    meta = extract_metadata(page, default_url=canonical)
    title = heading or strip_title_suffix(meta.title or "", meta.sitename)
    body = article_markdown(page, canonical, title)
    if not body:
        return Rejection("no article text found")
    metadata: dict = {"tags": sorted(set(meta.tags or []))}
    for key, value in (("byline", meta.author), ("sitename", meta.sitename)):
        if value:
            metadata[key] = value
    return Article(
        url=canonical,
        title=title,
        text=body,
        published_at=published or parse_date(meta.date),
        metadata=metadata,
    )


def is_sitemap_url(url: str) -> bool:
    """Whether a link names a sitemap (`sitemap.xml`, `sitemap_index.xml.gz`, `/sitemap/`)."""
    path = urlsplit(url).path.lower()
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return "sitemap" in last or path.endswith((".xml", ".xml.gz"))


def is_listing_url(url: str) -> bool:
    """Whether a URL is a pagination, tag, category, author, archive or search page."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return bool(PAGINATION.search(target) or TAXONOMY.search(parts.path.lower()))


def folder_of(path: str) -> str:
    """The folder an index page lists: `/blog/` for `/blog/`, `/blog` and `/blog/index.html`."""
    if path.endswith("/"):
        return path
    last = path.rsplit("/", 1)[-1]
    return path.rsplit("/", 1)[0] + "/" if "." in last else path + "/"


def parse_sitemap(data: bytes) -> tuple[str, list[str], str | None]:
    """(root kind, locs, error): "urlset" or "sitemapindex" and the `<loc>`s it lists.

    Gzipped sitemaps are inflated up to the protocol's size limit; entities and network access
    are off in the XML parser (no XXE).
    """
    if data[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, MAX_SITEMAP_BYTES)
        except (zlib.error, gzip.BadGzipFile) as err:
            return "", [], f"malformed sitemap: bad gzip ({err})"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as err:
        return "", [], f"malformed sitemap: {err}"
    if root is None:
        return "", [], "malformed sitemap: empty document"
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        return "", [], f"not a sitemap (root element <{kind}>)"
    locs = [
        (node.text or "").strip()
        for node in root.iter(f"{SITEMAP_NS}loc", "loc")
        if (node.text or "").strip()
    ]
    return kind, locs, None


def candidate_links(tree: lxml_html.HtmlElement, page: str, prefix: str) -> list[str]:
    """Links of an index page that can be articles: same site, below `prefix`, no query, not a
    listing or a file, in page order."""
    scope = tree.xpath("//main") or tree.xpath("//body") or [tree]
    itself = canonical_url(page)
    found: list[str] = []
    for href in scope[0].xpath(".//a/@href"):
        if href.startswith(("#", "mailto:", "javascript:", "tel:")):
            continue
        url = canonical_url(href, page)
        parts = urlsplit(url)
        if (
            parts.scheme in ("http", "https")
            and same_site(url, page)
            and not parts.query
            and parts.path.startswith(prefix)
            and parts.path != prefix
            and not is_listing_url(url)
            and not NOT_HTML.search(parts.path)
            and url != itself
            and url not in found
        ):
            found.append(url)
    return found


def is_listing(tree: lxml_html.HtmlElement, page: str) -> bool:
    """Whether a page is an index rather than an article.

    It is when its URL is a pagination/taxonomy page, when it links two or more pages below its
    own path (an article links its neighbours, which sit beside it, not below it), or when it
    calls itself a website (`og:type`) and also shows several post cards or pagination. `og:type`
    alone is not enough: many themes label every page "website".
    """
    if is_listing_url(page):
        return True
    if len(candidate_links(tree, page, folder_of(urlsplit(page).path))) >= 2:
        return True
    if (meta_content(tree, "og:type") or "").lower() not in LISTING_TYPES:
        return False
    cards = tree.xpath("//article[not(ancestor::article)][not(contains(@class, 'comment'))]")
    return len(cards) >= 2 or bool(pagination_links(tree, page, "/"))


def pagination_links(tree: lxml_html.HtmlElement, page: str, prefix: str) -> list[str]:
    """Further index pages: `rel=next` links and numbered pages of the same listing."""
    hrefs = tree.xpath(
        "//link[contains(concat(' ', @rel, ' '), ' next ')]/@href"
        " | //a[contains(concat(' ', @rel, ' '), ' next ')]/@href"
    )
    hrefs += [h for h in tree.xpath("//a/@href") if PAGINATION.search(h)]
    pages = []
    for href in hrefs:
        url = canonical_url(href, page)
        if same_site(url, page) and urlsplit(url).path.startswith(prefix) and url not in pages:
            pages.append(url)
    return pages


def article_title(tree: lxml_html.HtmlElement) -> str:
    """The article's own heading: the first `<h1>` of its `<article>`, else the only `<h1>`."""
    heading = first(tree.xpath("//article//h1") or tree.xpath("//*[@itemprop='headline']"))
    if heading is None:
        headings = tree.xpath("//h1")
        heading = headings[0] if len(headings) == 1 else None
    return node_text(heading)


def article_markdown(html: str | lxml_html.HtmlElement, url: str, title: str) -> str:
    """The article text as markdown, chrome pruned and comments excluded; "" when none.

    `html` is the page or its tree as trafilatura parses it (`load_html`), which is not changed.
    """
    text = extract_markdown(html, url, BOILERPLATE)
    text = tidy_markdown(text)
    lines = text.split("\n")
    if lines and title and lines[0].lstrip("#").strip() == title:
        text = "\n".join(lines[1:]).strip()  # the title is a field, not the first line
    return text
