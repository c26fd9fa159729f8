"""Crawling the items of one source: many at once, one item's failure never stopping the rest.

`crawl_items` fetches and parses the items on `ctx.max_workers` threads; `read_page` runs a page
reader after the cheap checks every article page needs; `reject` records a page that gives no
document; `archive_page` keeps raw payloads without interleaving writes of one key.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.http import FetchResult
from twin.crawl.pages import is_html, truncation_reason
from twin.domain.documents import RawDocument

log = logging.getLogger(__name__)
T = TypeVar("T")


def reject(out: CrawlOutcome, url: str, reason: str, *, skip: bool = False) -> None:
    """Record a fetched page that gives no document, and forget its validators.

    Without validators the next crawl fetches the page again instead of getting a 304 for a
    page that was never stored (a truncated response is often a transient fault).
    """
    (out.skipped if skip else out.failures).append(ItemFailure(url, reason))
    out.validators.pop(url, None)


def read_page(
    crawler: Crawler, result: FetchResult, reader: Callable[[str, str], T]
) -> tuple[T | None, str | None]:
    """`(reader(text, final_url), None)` for a fetched HTML page, run in the crawl's process pool
    when it has one; `(None, reason)` when the page is no HTML or was cut short in transit."""
    if not is_html(result):
        return None, f"not an HTML page ({result.content_type})"
    text = result.text()
    if problem := truncation_reason(text):
        return None, problem
    return crawler.extract(reader, text, result.final_url), None


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
    urls: set[str] = set()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl") as pool:
            for part in pool.map(run, items):
                merge_outcome(merged, part, urls)
    finally:
        crawler.ctx = shared
    return merged


def merge_outcome(into: CrawlOutcome, part: CrawlOutcome, urls: set[str] | None = None) -> None:
    """Add `part` to `into`; a document whose URL `into` already holds is not added twice.

    `urls`, when given, is the set of `into`'s document URLs, kept up to date across calls (so
    merging many parts is linear rather than quadratic).
    """
    have = {d.url for d in into.documents} if urls is None else urls
    for doc in part.documents:
        if doc.url not in have:
            into.documents.append(doc)
            have.add(doc.url)
    into.failures.extend(part.failures)
    into.skipped.extend(part.skipped)
    into.not_modified.extend(u for u in part.not_modified if u not in into.not_modified)
    into.validators.update(part.validators)
    into.fetched += part.fetched
