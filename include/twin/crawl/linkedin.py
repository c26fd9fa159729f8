"""LinkedIn, from the member's data export (Settings → Data privacy → Get a copy of your data).

The export ZIP is the stable channel: `Shares.csv` holds every post with its text, and
`Articles/Articles/*.html` every long-form article. LinkedIn's public pages need a signed-in
browser session and change markup often, so they are not scraped: a profile URL is reported as
skipped with that reason. The export is read from a URL (through the polite client) or a path.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import trafilatura
from lxml import html as lxml_html

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dispatch import register
from twin.domain.documents import DocumentKind, Platform, RawDocument

ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
MAX_EXPORT_BYTES = 200_000_000
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@register
class LinkedInCrawler(Crawler):
    platform = Platform.LINKEDIN
    url_patterns = (r"linkedin\.com/", r"(?i)linkedin[^/]*\.zip$")

    def crawl(self, url: str) -> CrawlOutcome:
        outcome = CrawlOutcome()
        if not is_export(url):
            outcome.skipped.append(
                ItemFailure(url, "LinkedIn pages need a signed-in session: crawl the data export")
            )
            outcome.listing_complete = False
            return outcome
        payload = self._read_export(url, outcome)
        if payload is None:
            return outcome
        raw_key = self.archive(url, payload, ".zip")
        try:
            archive = zipfile.ZipFile(io.BytesIO(payload))
        except zipfile.BadZipFile as err:
            outcome.failures.append(ItemFailure(url, f"not a ZIP archive: {err}"))
            return outcome
        with archive:
            names = archive.namelist()
            if "Shares.csv" in names:
                self._read_shares(archive.read("Shares.csv"), url, raw_key, outcome)
            for name in sorted(n for n in names if re.match(r"Articles/Articles/.+\.html$", n)):
                self._read_article(name, archive.read(name), url, raw_key, outcome)
        outcome.listing_complete = True
        return outcome

    def _read_export(self, url: str, outcome: CrawlOutcome) -> bytes | None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            result = self.fetch(url, outcome, accept=ZIP_TYPES)
            return result.content if result else None
        path = Path(unquote(parts.path) if parts.scheme == "file" else url)
        try:
            if path.stat().st_size > MAX_EXPORT_BYTES:
                outcome.failures.append(ItemFailure(url, "export larger than 200 MB"))
                return None
            outcome.fetched += 1
            return path.read_bytes()
        except OSError as err:
            outcome.failures.append(ItemFailure(url, f"cannot read export: {err}"))
            return None

    def _read_shares(
        self, data: bytes, source: str, raw_key: str | None, outcome: CrawlOutcome
    ) -> None:
        rows = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
        for line, row in enumerate(rows, start=2):
            link = (row.get("ShareLink") or "").strip()
            text = (row.get("ShareCommentary") or "").strip()
            where = link or f"{source}#Shares.csv:{line}"
            if not link:
                outcome.failures.append(ItemFailure(where, "share without ShareLink"))
                continue
            if not text:
                outcome.skipped.append(ItemFailure(where, "reshare without commentary"))
                continue
            try:
                outcome.documents.append(
                    RawDocument(
                        url=link,
                        platform=self.platform,
                        kind=DocumentKind.POST,
                        author=self.ctx.author,
                        title=first_line(text),
                        text=text,
                        published_at=parse_date(row.get("Date")),
                        source_url=source,
                        raw_key=raw_key,
                        metadata={
                            "visibility": row.get("Visibility") or None,
                            "shared_url": row.get("SharedUrl") or None,
                        },
                    )
                )
            except ValueError as err:
                outcome.failures.append(ItemFailure(where, f"invalid share: {err}"))

    def _read_article(
        self, name: str, data: bytes, source: str, raw_key: str | None, outcome: CrawlOutcome
    ) -> None:
        where = f"{source}#{name}"
        page = data.decode("utf-8", errors="replace")
        try:
            tree = lxml_html.fromstring(page)
        except (ValueError, lxml_html.etree.ParserError) as err:
            outcome.failures.append(ItemFailure(where, f"unreadable article HTML: {err}"))
            return
        heading = tree.find(".//h1")
        title = heading.text_content() if heading is not None else tree.findtext(".//title")
        link = heading.find(".//a") if heading is not None else None
        url = link.get("href") if link is not None and link.get("href") else where
        published = tree.find(".//p[@class='published']")
        body = tree.find(".//body/div")
        markup = lxml_html.tostring(body if body is not None else tree, encoding="unicode")
        text = (
            trafilatura.extract(
                f"<html><body><article>{markup}</article></body></html>",
                output_format="markdown",
                include_comments=False,
                favor_recall=True,
            )
            or ""
        )
        if not text.strip():
            outcome.failures.append(ItemFailure(where, "article has no text"))
            return
        date = (
            published.text_content().removeprefix("Published on ")
            if published is not None
            else None
        )
        outcome.documents.append(
            RawDocument(
                url=url,
                platform=self.platform,
                kind=DocumentKind.ARTICLE,
                author=self.ctx.author,
                title=(title or name).strip(),
                text=text.strip(),
                published_at=parse_date(date),
                source_url=source,
                raw_key=raw_key,
                metadata={"export_file": name},
            )
        )


def is_export(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(".zip")


def first_line(text: str, limit: int = 80) -> str:
    """A post's title: its first line, shortened at a word boundary."""
    line = text.strip().splitlines()[0].strip()
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + "…"


def parse_date(value: str | None) -> datetime | None:
    """LinkedIn export dates are UTC, `YYYY-MM-DD HH:MM[:SS]`."""
    value = (value or "").strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
