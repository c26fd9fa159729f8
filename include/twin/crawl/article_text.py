"""An article's text by trafilatura: its fast pass, and its full cascade only where needed.

trafilatura's full cascade runs its own extractor, then readability and jusText, and takes their
text only when its own falls short (`trafilatura.external.compare_extraction`). With
`favor_precision`, that comparison is all the fast pass leaves out, apart from keeping
teaser-class blocks when it recovers stray paragraphs. The comparison costs about as much as the
extraction itself, so the fast result is kept wherever `keeps_fast_result` shows the comparison
would keep it too, and only the other pages are extracted again in full (the hard pages: text
that is short, left with chrome, table-shaped or a small part of the page). Either way the text
is the full cascade's.
"""

from __future__ import annotations

from copy import copy

import trafilatura
from lxml import etree
from lxml import html as lxml_html
from trafilatura.core import determine_returnstring
from trafilatura.external import SANITIZED_XPATH
from trafilatura.settings import Document
from trafilatura.settings import Extractor as Options
from trafilatura.utils import load_html, trim

from twin.crawl.pages import without

CHROME_LEFT = etree.XPath(SANITIZED_XPATH)
PARAGRAPH_TEXT = etree.XPath(".//p//text()")
# What readability drops before it reads a page (nested ones are counted once).
UNREAD = etree.XPath(
    "//*[self::script or self::style or self::fencedframe][not(ancestor::fencedframe)]"
)
# Blocks the fast pass keeps where the full cascade prunes them (on any tag: a wider net).
TEASERS = etree.XPath(
    "//*[contains(translate(@class, 'T', 't'), 'teaser')"
    " or contains(translate(@id, 'T', 't'), 'teaser')]"
)
# Built once (trafilatura would build them on every call); `url` is set per page on a copy.
FAST = Options(
    output_format="markdown",
    fast=True,
    precision=True,
    comments=False,
    tables=True,
    images=False,
    links=False,
    formatting=True,
    dedup=False,
)
FULL = copy(FAST)
FULL.fast = False


def extract_markdown(html: str | lxml_html.HtmlElement, url: str, chrome: str) -> str:
    """The page's main text as markdown (the full cascade's), "" when it has none.

    `html` is the page or its tree as trafilatura parses it (`load_html`), which is not changed;
    `chrome` is an XPath predicate selecting the elements to prune before extraction (as
    trafilatura's `prune_xpath` does, once for both passes).
    """
    tree = load_html(html)
    if tree is None:
        return ""
    page = without(tree, [f"//*[{chrome}]"])
    fast = _options(FAST, url)
    document = trafilatura.bare_extraction(page, options=fast)
    if document is not None and keeps_fast_result(document, page, fast):
        return determine_returnstring(document, fast)
    return trafilatura.extract(page, options=_options(FULL, url)) or ""


def keeps_fast_result(document: Document, page: lxml_html.HtmlElement, options: Options) -> bool:
    """Whether the full cascade would keep the fast pass's `document` of `page` as it is.

    It would when the text is long enough and free of chrome (else jusText is tried), has
    paragraphs and no more tables than paragraphs, and is at least half of what readability
    could take from the page (it must be twice as long to replace it); and when the page has
    no teaser blocks (the two passes prune them differently).
    """
    body, text = document.body, document.raw_text or ""
    return (
        len(text) >= options.min_extracted_size
        and not CHROME_LEFT(body)
        and bool(PARAGRAPH_TEXT(body))
        and len(body.findall(".//table")) <= len(body.findall(".//p"))
        and 2 * len(text) >= readable_length(page)
        and not TEASERS(page)
    )


def readable_length(page: lxml_html.HtmlElement) -> int:
    """At least the length of any text readability takes from `page`: the page's text without
    scripts and styles, whitespace collapsed (removing a part of a text shortens the collapsed
    text by the part's collapsed length, less at most one space)."""
    unread = sum(len(trim(node.text_content())) - 1 for node in UNREAD(page))
    return len(trim(page.text_content())) - unread


def _options(base: Options, url: str) -> Options:
    options = copy(base)
    options.url = options.source = url
    return options
