"""Reading fetched pages: is it HTML, was it cut short, and what its markup declares.

`truncation_reason` says whether a response was cut short; `canonical_link`, `published_date`,
`meta_content`, `json_ld` read what a page says about itself; `without` prunes chrome by XPath.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html

from twin.crawl.dates import parse_date
from twin.crawl.http import FetchResult
from twin.crawl.urls import canonical_url, same_site

T = TypeVar("T")
# What each kind of fetch accepts (the client refuses other content types).
HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/xml", "text/xml")
JSON_TYPES = ("application/json",)
# Compiled once: every page of a crawl is read with them.
META_NAMED = etree.XPath("//meta[@property=$n or @name=$n or @itemprop=$n][@content]")
JSON_LD_SCRIPTS = etree.XPath("//script[@type='application/ld+json']")
CANONICAL_LINKS = etree.XPath("//link[@href][contains(concat(' ', @rel, ' '), ' canonical ')]")
# Readers' comments carry <time> too: their dates are never the article's.
_OUTSIDE_COMMENTS = "[not(ancestor-or-self::*[contains(@class, 'comment')])]"
PUBLISHED_TIMES = etree.XPath(
    f"//time[contains(@class, 'published') or @itemprop='datePublished']{_OUTSIDE_COMMENTS}"
    "/@datetime"
)
ARTICLE_TIMES = etree.XPath(f"//article//time{_OUTSIDE_COMMENTS}/@datetime")


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
        for node in META_NAMED(tree, n=name):
            value = node.get("content", "").strip()
            if value:
                return value
    return None


def json_ld(tree: lxml_html.HtmlElement) -> list[dict]:
    """Every JSON-LD object on the page (`@graph` members flattened); broken blocks are skipped."""
    found: list[dict] = []
    for script in JSON_LD_SCRIPTS(tree):
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
    for node in CANONICAL_LINKS(tree):
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
    candidates += PUBLISHED_TIMES(tree)
    candidates += ARTICLE_TIMES(tree)
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


def without(node: lxml_html.HtmlElement, xpaths: Iterable[str]) -> lxml_html.HtmlElement:
    """A copy of `node` with every element matching one of `xpaths` removed."""
    clone = copy.deepcopy(node)
    for xpath in xpaths:
        remove_nodes(clone, xpath)
    return clone
