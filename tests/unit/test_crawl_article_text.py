"""Article text: trafilatura's fast pass where the full cascade would keep its result, the full
cascade on the hard pages, and the same markdown as the full cascade either way."""

from __future__ import annotations

import pytest
import trafilatura
from trafilatura.utils import load_html

from twin.crawl import article_text
from twin.crawl.article_text import FAST, extract_markdown, keeps_fast_result
from twin.crawl.blog import BOILERPLATE, article_markdown
from twin.crawl.pages import without

URL = "https://example.com/blog/a-post/"
SENTENCE = "The pipeline read every partition twice before anyone noticed the bill. "
PLAIN = (
    "<article><h1>A post</h1>"
    + "".join(f"<p>Part {n}. {SENTENCE * 3}</p>" for n in range(5))
    + "</article><section id='comments'><p>First! Great post.</p></section>"
)
# The article's own markup holds one line; its text sits in plain blocks beside it.
TEXT_BESIDE_THE_ARTICLE = (
    f"<article><p>{SENTENCE}</p></article>"
    + "<div>"
    + "".join(f"<div>Part {n}. {SENTENCE * 3}</div>" for n in range(5))
    + "</div>"
)
PAGES = {
    "plain": PLAIN,
    "text beside the article": TEXT_BESIDE_THE_ARTICLE,
    "text in spans": "<div id='main'>"
    + "".join(f"<span>{SENTENCE * 2}</span>" for _ in range(6))
    + "</div>",
    "teaser block": "<article><p>Short intro.</p></article>"
    f"<div class='teaser'><p>{SENTENCE * 4}</p></div>",
}


def html(body: str) -> str:
    return f"<html><head><title>A post</title></head><body>{body}</body></html>"


def full_cascade(page: str) -> str:
    """What the crawler extracted before the fast pass: trafilatura's full cascade."""
    text = trafilatura.extract(
        page,
        url=URL,
        output_format="markdown",
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        include_formatting=True,
        favor_precision=True,
        deduplicate=False,
        prune_xpath=f"//*[{BOILERPLATE}]",
    )
    return text or ""


@pytest.mark.parametrize("body", PAGES.values(), ids=PAGES.keys())
def test_text_is_the_full_cascades(body: str) -> None:
    assert extract_markdown(html(body), URL, BOILERPLATE) == full_cascade(html(body))


def test_a_plain_article_is_read_by_the_fast_pass_alone(monkeypatch) -> None:
    def no_full_cascade(*args: object, **kwargs: object) -> str:
        raise AssertionError("the full cascade ran on a plain article")

    monkeypatch.setattr(article_text.trafilatura, "extract", no_full_cascade)

    text = article_markdown(html(PLAIN), URL, "A post")

    assert text.count(SENTENCE.strip()) == 15 and text.startswith("Part 0.")
    assert "First!" not in text


def test_a_fast_result_short_of_the_page_fails_the_check() -> None:
    page = without(load_html(html(TEXT_BESIDE_THE_ARTICLE)), [f"//*[{BOILERPLATE}]"])
    fast = trafilatura.bare_extraction(page, options=FAST)

    assert fast is not None and len(fast.raw_text) < 100  # one line of five paragraphs
    assert not keeps_fast_result(fast, page, FAST)


def test_text_the_fast_pass_misses_is_found_by_the_full_cascade() -> None:
    text = article_markdown(html(TEXT_BESIDE_THE_ARTICLE), URL, "A post")

    assert all(f"Part {n}." in text for n in range(5))
