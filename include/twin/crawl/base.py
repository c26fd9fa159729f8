"""What every platform crawler is given and what it returns.

A crawler turns one source link (a feed, an archive, a sitemap, an export, a repository) into raw
documents. It never raises for one bad item: the item goes into `failures` with its reason and
the rest of the source is crawled. Raising is for a source that cannot be read at all.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from twin.crawl.decode import without_nul
from twin.crawl.gitfetch import GitLimits
from twin.crawl.http import BlockedURL, FetchError, FetchResult, PoliteClient
from twin.crawl.pool import Extractor, run_here
from twin.domain.documents import DocumentKind, Platform, RawDocument
from twin.store.object_store import ObjectStore

Validators = tuple[str | None, str | None]  # (ETag, Last-Modified)
T = TypeVar("T")


@dataclass(frozen=True)
class ItemFailure:
    """One URL that could not be crawled, and why."""

    url: str
    reason: str


@dataclass
class CrawlOutcome:
    """Everything a crawler found in one source."""

    documents: list[RawDocument] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    skipped: list[ItemFailure] = field(default_factory=list)  # robots.txt, binaries, drafts
    not_modified: list[str] = field(default_factory=list)  # answered 304: known unchanged
    validators: dict[str, Validators] = field(default_factory=dict)
    fetched: int = 0
    listing_complete: bool = False  # True when every item of the source was listed

    def seen_urls(self) -> set[str]:
        """URLs the source still lists (crawled, unchanged or failed this time)."""
        return (
            {d.url for d in self.documents}
            | set(self.not_modified)
            | {f.url for f in self.failures}
        )


@dataclass
class CrawlContext:
    """What a crawler works with: the shared client, the archive and what is already known."""

    client: PoliteClient
    archive: ObjectStore | None
    author: str
    known_validators: Callable[[list[str]], dict[str, Validators]] = lambda _urls: {}
    max_workers: int = 8
    upload_dir: Path | None = None  # where uploaded exports (LinkedIn) are read from
    git_limits: GitLimits = field(default_factory=GitLimits)
    extractor: Extractor | None = None  # a process pool for CPU-bound extraction, if any


class Crawler(ABC):
    """One platform's crawler. Subclasses declare the URLs they handle."""

    platform: Platform
    # Regexes over the whole URL; the dispatcher picks the first crawler whose pattern matches.
    url_patterns: tuple[str, ...] = ()

    def __init__(self, ctx: CrawlContext) -> None:
        self.ctx = ctx

    @classmethod
    def handles(cls, url: str) -> bool:
        return any(re.search(p, url) for p in cls.url_patterns)

    @abstractmethod
    def crawl(self, url: str) -> CrawlOutcome:
        """Crawl one source link."""

    # helpers shared by crawlers ------------------------------------------------------------
    def fetch(
        self,
        url: str,
        outcome: CrawlOutcome,
        *,
        conditional: bool = False,
        accept: tuple[str, ...] | None = None,
    ) -> FetchResult | None:
        """Fetch `url`; a failure is recorded on `outcome` and None returned.

        With `conditional`, the validators from the last crawl are sent and a 304 is recorded
        as not modified (also None: there is nothing new to parse).
        """
        etag = modified = None
        if conditional:
            etag, modified = self.ctx.known_validators([url]).get(url, (None, None))
        try:
            result = self.ctx.client.fetch(url, etag=etag, last_modified=modified, accept=accept)
        except FetchError as err:
            # A robots.txt refusal is the site's wish (skipped); an unreachable host is a failure.
            polite = err.reason.startswith("disallowed by robots.txt")
            bucket = outcome.skipped if polite else outcome.failures
            bucket.append(ItemFailure(url, err.reason))
            return None
        outcome.fetched += 1
        if result.not_modified:
            outcome.not_modified.append(url)
            return None
        if result.etag or result.last_modified:
            outcome.validators[url] = (result.etag, result.last_modified)
        return result

    def document(self, kind: DocumentKind, **fields: Any) -> RawDocument:
        """A raw document of this crawler's platform, by the crawl's author; `fields` the rest,
        with NUL characters removed from their text (exports, APIs and feeds can carry them)."""
        clean = {name: without_nul(value) for name, value in fields.items()}
        return RawDocument(platform=self.platform, kind=kind, author=self.ctx.author, **clean)

    def extract(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)`: CPU-bound page reading, in the crawl's process pool when it has one, else
        in this process one thread at a time (`run_here`)."""
        extractor = self.ctx.extractor
        return extractor.run(fn, *args) if extractor is not None else run_here(fn, *args)

    def refused(self, url: str, outcome: CrawlOutcome) -> bool:
        """Whether the SSRF guard refuses `url`, a link found in a listing; recorded as a failure.

        A feed carries its items' text, so an item is refused before it is used, not only when
        its page is fetched: a private or metadata link never becomes a document.
        """
        try:
            self.ctx.client.check(url)
        except BlockedURL as err:
            outcome.failures.append(ItemFailure(url, f"refused: {err.reason}"))
            return True
        return False

    def archive(self, url: str, content: bytes, suffix: str) -> str | None:
        """Keep the raw payload in the object store; return its key."""
        if self.ctx.archive is None:
            return None
        digest = hashlib.sha256(url.encode()).hexdigest()[:24]
        key = f"raw/{self.platform.value}/{digest}{suffix}"
        self.ctx.archive.put(key, content)
        return key
