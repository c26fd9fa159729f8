"""What the article crawlers (Medium, Substack, blog) share: pages in, clean markdown out.

- `canonical_url`: one spelling per page. The fragment and tracking parameters (`utm_*`,
  `source`, `ref`, click ids, ...) are dropped, scheme and host lower-cased, default ports and
  duplicate slashes removed, an empty path becomes `/`. A trailing slash is kept as the site
  publishes it: on most servers `/a` and `/a/` are different resources (one redirects to the
  other), and the site's own `<link rel=canonical>` decides which one is the page.
- `is_html` / `truncation_reason`: whether a response is a page, and whether it was cut short.
- `html_to_markdown`: a small, predictable converter for the known markup of Medium and
  Substack (headings, paragraphs, nested lists, fenced code with its language, quotes, tables);
  link targets and images are dropped, literal `*` and `_` are not escaped (the text is read
  and chunked, never rendered back to HTML).
- `parse_date`: ISO 8601, RFC 2822 and human dates, always timezone-aware UTC.
- `crawl_items`: fetch and parse many items of one source concurrently; one item's failure
  (even an unexpected exception) is recorded and the others go on.
"""

from __future__ import annotations

import copy
import dataclasses
import email.utils
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from dateutil import parser as date_parser
from lxml import etree
from lxml import html as lxml_html

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.http import FetchResult
from twin.domain.documents import RawDocument

log = logging.getLogger(__name__)
T = TypeVar("T")

# Query parameters that say where a reader came from, never which page it is.
TRACKING_PARAMS = frozenset(
    [
        "source",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "sk",
        "trk",
        "trkcampaign",
    ]
)
TRACKING_PREFIXES = ("utm_", "pk_", "hsa_")
DEFAULT_PORTS = {"http": 80, "https": 443}
# What each kind of fetch accepts (the client refuses other content types).
HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml")
JSON_TYPES = ("application/json",)

# Tags whose content is never the author's prose.
NON_CONTENT_TAGS = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "button",
        "form",
        "input",
        "select",
        "textarea",
        "label",
        "svg",
        "iframe",
        "object",
        "embed",
        "canvas",
        "nav",
        "img",
        "picture",
        "video",
        "audio",
        "source",
        "track",
        "map",
        "meta",
        "link",
    ]
)
CONTAINER_TAGS = frozenset(
    [
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "aside",
        "body",
        "html",
        "details",
        "summary",
        "address",
        "center",
        "dl",
        "dt",
        "dd",
        "hgroup",
    ]
)
HEADING_TAGS = {f"h{n}": n for n in range(1, 7)}
BLOCK_TAGS = frozenset(
    CONTAINER_TAGS
    | set(HEADING_TAGS)
    | {"p", "pre", "ul", "ol", "li", "blockquote", "hr", "table", "figure", "figcaption"}
)
BR = "\x00br\x00"  # a <br> survives whitespace collapsing, then becomes a newline
EARLIEST_YEAR = 1990
LATEST_YEAR = 2100


# URLs ------------------------------------------------------------------------------------------
def is_tracking_param(name: str) -> bool:
    """Whether a query parameter only records where the reader came from."""
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None, *, keep_query: bool = True) -> str:
    """`url` (resolved against `base`) in its one canonical spelling; see the module docstring.

    With `keep_query=False` the whole query goes (story URLs whose queries are all tracking).
    """
    if base:
        url = urljoin(base, url.strip())
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    netloc = host
    if parts.port and DEFAULT_PORTS.get(scheme) != parts.port:
        netloc = f"{host}:{parts.port}"
    if parts.username or parts.password:  # kept, so the SSRF guard still sees and refuses them
        creds = parts.username or ""
        creds += f":{parts.password}" if parts.password else ""
        netloc = f"{creds}@{netloc}"
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    query = ""
    if keep_query and parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, v) for k, v in pairs if not is_tracking_param(k)])
    return urlunsplit((scheme, netloc, path, query, ""))


def site_host(url: str) -> str:
    """The host of `url` without a leading `www.`, for same-site comparisons."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def same_site(a: str, b: str) -> bool:
    """Whether two URLs are on the same host (`www.` ignored) and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    return site_host(a) == site_host(b) and (pa.port or DEFAULT_PORTS.get(pa.scheme)) == (
        pb.port or DEFAULT_PORTS.get(pb.scheme)
    )


# dates -----------------------------------------------------------------------------------------
def parse_date(value: object) -> datetime | None:
    """A timezone-aware UTC datetime from ISO 8601, RFC 2822 or a human date; None if unclear.

    Dates without a zone are taken as UTC; years outside 1990..2100 are treated as garbage.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed: datetime | None = value
    else:
        text = str(value).strip()
        parsed = None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                try:
                    parsed = date_parser.parse(text)
                except (ValueError, OverflowError, TypeError):
                    return None
    if parsed is None or not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# pages -----------------------------------------------------------------------------------------
def is_html(result: FetchResult) -> bool:
    """Whether the response is an HTML page (by Content-Type, or by its first bytes)."""
    ctype = (result.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        return True
    head = result.content[:512].lstrip().lower()
    return not ctype and (head.startswith(b"<!doctype html") or head.startswith(b"<html"))


def truncation_reason(text: str) -> str | None:
    """Why a page looks cut off in transit, or None.

    Rule: a document that opens `<html` must close it (`</html>`), and must not end inside a
    tag. Servers and CDNs that cut a response short usually still send a matching
    Content-Length, so only the markup can tell.
    """
    tail = text.rstrip()
    lowered = tail.lower()
    if tail.rfind("<") > tail.rfind(">"):
        return "truncated HTML: the page ends inside a tag"
    if "<html" in lowered[:4096] and "</html>" not in lowered[-4096:]:
        return "truncated HTML: the page ends before </html>"
    return None


def parse_html(text: str) -> lxml_html.HtmlElement | None:
    """The page's element tree, or None when there is no markup to parse."""
    if not text.strip():
        return None
    try:
        # Encoding declarations in the markup would clash with an already decoded str.
        text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
        return lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def class_is(name: str) -> str:
    """XPath predicate: the element's class list contains `name`."""
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def first(nodes: Sequence[T]) -> T | None:
    """The first of `nodes` (an XPath result), or None."""
    return nodes[0] if nodes else None


def node_text(node: lxml_html.HtmlElement | None) -> str:
    """The element's visible text, whitespace collapsed."""
    if node is None:
        return ""
    return re.sub(r"\s+", " ", node.text_content()).strip()


def meta_content(tree: lxml_html.HtmlElement, *names: str) -> str | None:
    """The first non-empty `<meta property|name|itemprop=...>` content among `names`."""
    for name in names:
        for node in tree.xpath(
            "//meta[@property=$n or @name=$n or @itemprop=$n][@content]", n=name
        ):
            value = node.get("content", "").strip()
            if value:
                return value
    return None


def json_ld(tree: lxml_html.HtmlElement) -> list[dict]:
    """Every JSON-LD object on the page (`@graph` members flattened); broken blocks are skipped."""
    found: list[dict] = []
    for script in tree.xpath("//script[@type='application/ld+json']"):
        try:
            data = json.loads(script.text or "")
        except json.JSONDecodeError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                if isinstance(graph, list):
                    stack.extend(graph)
    return found


def canonical_link(tree: lxml_html.HtmlElement, page_url: str) -> str | None:
    """The page's `<link rel=canonical>` when it points at the same site, canonicalised.

    A canonical on another site (a cross-post pointing at the original) is not taken: the
    document's identity stays with the site it was crawled from.
    """
    for node in tree.xpath("//link[@href][contains(concat(' ', @rel, ' '), ' canonical ')]"):
        href = canonical_url(node.get("href", ""), page_url)
        if urlsplit(href).scheme in ("http", "https") and same_site(href, page_url):
            return href
    return None


def published_date(tree: lxml_html.HtmlElement) -> datetime | None:
    """The publication date the page declares: meta tags, JSON-LD, then `<time datetime>`."""
    candidates: list[object] = [
        meta_content(tree, "article:published_time", "datePublished", "og:published_time")
    ]
    candidates += [item.get("datePublished") for item in json_ld(tree) if item.get("datePublished")]
    # Readers' comments carry <time> too: their dates are never the article's.
    outside_comments = "[not(ancestor-or-self::*[contains(@class, 'comment')])]"
    candidates += tree.xpath(
        "//time[contains(@class, 'published') or @itemprop='datePublished']"
        f"{outside_comments}/@datetime"
    )
    candidates += tree.xpath(f"//article//time{outside_comments}/@datetime")
    for value in candidates:
        if parsed := parse_date(value):
            return parsed
    return None


def strip_title_suffix(title: str, *suffixes: str | None) -> str:
    """`title` without a trailing " · Site" / " | by Author | Medium" style suffix."""
    title = re.sub(r"\s+", " ", title).strip()
    for suffix in (s for s in suffixes if s):
        for sep in (" · ", " | ", " – ", " — ", " - ", " :: "):
            if title.endswith(sep + suffix) and len(title) > len(sep + suffix):
                title = title[: -len(sep + suffix)].strip()
    return title


def remove_nodes(root: lxml_html.HtmlElement, xpath: str) -> int:
    """Drop every element matching `xpath` (their tails stay in place); return how many."""
    nodes = root.xpath(xpath)
    for node in nodes:
        if node.getparent() is not None:
            node.drop_tree()
    return len(nodes)


# HTML → markdown -------------------------------------------------------------------------------
def html_to_markdown(node: lxml_html.HtmlElement | None) -> str:
    """Markdown for the element's content; see the module docstring for what is kept."""
    if node is None:
        return ""
    blocks: list[str] = []
    _container(node, blocks)
    return tidy_markdown("\n\n".join(blocks))


def fragment_to_markdown(html: str) -> str:
    """Markdown for an HTML fragment (a feed's `content:encoded`, an API's `body_html`)."""
    if not html or not html.strip():
        return ""
    try:
        wrapper = lxml_html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    return html_to_markdown(wrapper)


def tidy_markdown(text: str) -> str:
    """Trailing spaces gone, at most one blank line in a row, a blank line after code fences.

    Lines inside fenced code are left exactly as they are.
    """
    out: list[str] = []
    fence = ""  # the open code fence, e.g. "```"; a longer run of backticks closes it too
    after_fence = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if fence:
            out.append(line)
            closing = line.strip()
            if closing.startswith(fence) and not closing.strip("`"):
                fence, after_fence = "", True
            continue
        line = line.rstrip()
        if after_fence and line:
            out.append("")  # trafilatura glues the next paragraph to a closing fence
        after_fence = False
        if opening := re.match(r"\s*(`{3,})", line):
            fence = opening.group(1)
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def _tag(el: etree._Element) -> str | None:
    return el.tag.lower() if isinstance(el.tag, str) else None


def _container(el: lxml_html.HtmlElement, out: list[str]) -> None:
    """Blocks of a container element: inline runs become paragraphs, blocks are rendered."""
    run: list[str] = [el.text or ""]
    for child in el:
        tag = _tag(child)
        if tag is None or tag in NON_CONTENT_TAGS:
            run.append(child.tail or "")
            continue
        if tag in BLOCK_TAGS:
            _flush(run, out)
            _block(child, tag, out)
            run = [child.tail or ""]
        else:
            run.append(_inline(child))
            run.append(child.tail or "")
    _flush(run, out)


def _flush(run: list[str], out: list[str]) -> None:
    text = _clean_inline("".join(run))
    if text:
        out.append(text)
    run.clear()


def _clean_inline(text: str) -> str:
    text = re.sub(r"\s+", " ", text)
    lines = [line.strip() for line in text.split(BR)]
    return "\n".join(line for line in lines if line).strip()


def _block(el: lxml_html.HtmlElement, tag: str, out: list[str]) -> None:
    if tag in HEADING_TAGS:
        text = _clean_inline(_inline_children(el)).replace("\n", " ")
        if text:
            out.append("#" * HEADING_TAGS[tag] + " " + text.strip("*").strip())
    elif tag == "p" or tag == "figcaption":
        _container(el, out)
    elif tag == "pre":
        out.append(_code_block(el))
    elif tag in ("ul", "ol"):
        rendered = _list(el, ordered=tag == "ol")
        if rendered:
            out.append(rendered)
    elif tag == "blockquote":
        inner: list[str] = []
        _container(el, inner)
        if inner:
            quoted = "\n>\n".join("\n".join("> " + ln for ln in b.split("\n")) for b in inner)
            out.append(quoted)
    elif tag == "hr":
        out.append("---")
    elif tag == "table":
        rendered = _table(el)
        if rendered:
            out.append(rendered)
    else:  # containers, figures, stray list items
        _container(el, out)


def _code_block(el: lxml_html.HtmlElement) -> str:
    code = el.text_content().strip("\n")
    classes = " ".join([el.get("class", "")] + [c.get("class", "") for c in el.iter("code")])
    match = re.search(r"(?:language|lang)-([\w+#.-]+)", classes)
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}{match.group(1) if match else ''}\n{code}\n{fence}"


def _list(el: lxml_html.HtmlElement, *, ordered: bool) -> str:
    items: list[str] = []
    number = int(el.get("start", "1")) if (el.get("start") or "").isdigit() else 1
    for li in el:
        if _tag(li) != "li":
            continue
        marker = f"{number}. " if ordered else "- "
        number += 1
        blocks: list[str] = []
        _container(li, blocks)
        if not blocks:
            continue
        pad = " " * len(marker)
        body = "\n".join(blocks).replace("\n", "\n" + pad)
        items.append(marker + body)
    return "\n".join(items)


def _table(el: lxml_html.HtmlElement) -> str:
    rows = []
    for tr in el.iter("tr"):
        cells = [
            _clean_inline(_inline_children(c)).replace("\n", " ").replace("|", "\\|")
            for c in tr
            if _tag(c) in ("td", "th")
        ]
        if any(cells):
            rows.append(cells)
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def _inline_children(el: lxml_html.HtmlElement) -> str:
    parts = [el.text or ""]
    for child in el:
        tag = _tag(child)
        if tag is not None and tag not in NON_CONTENT_TAGS:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _inline(el: lxml_html.HtmlElement) -> str:
    tag = _tag(el)
    if tag == "br":
        return BR
    if tag == "code" or tag == "kbd" or tag == "samp":
        text = re.sub(r"\s+", " ", el.text_content()).strip()
        return f"`{text}`" if text else ""
    inner = _inline_children(el)
    if tag in ("strong", "b"):
        return _wrap(inner, "**")
    if tag in ("em", "i"):
        return _wrap(inner, "*")
    if tag in ("s", "del", "strike"):
        return _wrap(inner, "~~")
    if tag in BLOCK_TAGS:  # a block inside inline content (broken markup): keep it apart
        return BR + inner + BR
    return inner


def _wrap(inner: str, mark: str) -> str:
    """Emphasis markers hug the text; surrounding spaces stay outside them."""
    core = inner.strip()
    if not core or BR in core:
        return inner
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(inner.rstrip()) :]
    return f"{lead}{mark}{core}{mark}{trail}"


def without(node: lxml_html.HtmlElement, xpaths: Iterable[str]) -> lxml_html.HtmlElement:
    """A copy of `node` with every element matching one of `xpaths` removed."""
    clone = copy.deepcopy(node)
    for xpath in xpaths:
        remove_nodes(clone, xpath)
    return clone


def reject(out: CrawlOutcome, url: str, reason: str, *, skip: bool = False) -> None:
    """Record a fetched page that gives no document, and forget its validators.

    Without validators the next crawl fetches the page again instead of getting a 304 for a
    page that was never stored (a truncated response is often a transient fault).
    """
    (out.skipped if skip else out.failures).append(ItemFailure(url, reason))
    out.validators.pop(url, None)


# archive ---------------------------------------------------------------------------------------
# Two listed URLs can end at the same canonical page on two threads at once; writes of one key
# are serialised so they never interleave (striped locks: bounded memory however many URLs).
_ARCHIVE_LOCKS = tuple(threading.Lock() for _ in range(64))


def archive_page(crawler: Crawler, url: str, content: bytes, suffix: str) -> str | None:
    """`crawler.archive(...)` with writes of the same URL serialised; returns the object key."""
    with _ARCHIVE_LOCKS[hash(url) % len(_ARCHIVE_LOCKS)]:
        return crawler.archive(url, content, suffix)


# fan-out ---------------------------------------------------------------------------------------
def crawl_items(
    crawler: Crawler,
    items: Sequence[T],
    crawl_one: Callable[[T, CrawlOutcome], RawDocument | None],
    item_url: Callable[[T], str],
) -> CrawlOutcome:
    """Run `crawl_one` over `items` on `ctx.max_workers` threads; return the merged outcome.

    Each item records into its own outcome (no shared mutable state between threads); they are
    merged in listing order, so results are deterministic. Two items that turn out to be the
    same document (an old URL redirecting to the new one) give one document: the first listed.
    An unexpected exception is one item's failure, named with its type. The validators of all
    items are looked up once, before the fan-out.
    """

    def run(item: T) -> CrawlOutcome:
        part = CrawlOutcome()
        try:
            doc = crawl_one(item, part)
        except Exception as err:  # a parser bug on one page must not lose the whole source
            log.warning("crawl failed for %s", item_url(item), exc_info=True)
            part.failures.append(ItemFailure(item_url(item), f"{type(err).__name__}: {err}"))
            return part
        if doc is not None:
            part.documents.append(doc)
        return part

    merged = CrawlOutcome()
    if not items:
        return merged
    # One look-up of every item's validators (one store query) instead of one per page.
    known = crawler.ctx.known_validators([item_url(item) for item in items])
    shared = crawler.ctx
    crawler.ctx = dataclasses.replace(
        shared, known_validators=lambda urls: {u: known[u] for u in urls if u in known}
    )
    workers = max(1, min(shared.max_workers, len(items)))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl") as pool:
            for part in pool.map(run, items):
                merge_outcome(merged, part)
    finally:
        crawler.ctx = shared
    return merged


def merge_outcome(into: CrawlOutcome, part: CrawlOutcome) -> None:
    """Add `part` to `into`; a document whose URL `into` already holds is not added twice."""
    have = {d.url for d in into.documents}
    for doc in part.documents:
        if doc.url not in have:
            into.documents.append(doc)
            have.add(doc.url)
    into.failures.extend(part.failures)
    into.skipped.extend(part.skipped)
    into.not_modified.extend(u for u in part.not_modified if u not in into.not_modified)
    into.validators.update(part.validators)
    into.fetched += part.fetched
