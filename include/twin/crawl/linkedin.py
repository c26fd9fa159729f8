"""LinkedIn, from the member's data export (Settings → Data privacy → Get a copy of your data).

The export ZIP is the stable channel: `Shares.csv` holds every post with its text, and
`Articles/Articles/*.html` every long-form article. LinkedIn's public pages need a signed-in
browser session and change markup often, so they are not scraped: a profile URL is reported as
skipped with that reason. The export is fetched from an http(s) URL through the polite client, or
read from the upload folder (`upload://<file name>`, see `twin.crawl.uploads`).

The archive is untrusted input: it is refused with more than `MAX_MEMBERS` members, and a member
larger than `MAX_MEMBER_BYTES` once inflated or compressed more than `MAX_RATIO` times (a ZIP bomb)
is not inflated; each such member, and each share or article that cannot be read, is one item's
failure with its reason while the rest of the export is read.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from urllib.parse import urljoin, urlsplit

import trafilatura
from lxml import html as lxml_html

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dates import parse_date
from twin.crawl.registry import register
from twin.crawl.uploads import UPLOAD_SCHEME, read_upload, upload_dir
from twin.domain.documents import DocumentKind, Platform

ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
MAX_EXPORT_BYTES = 200_000_000
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 20_000_000
MAX_RATIO = 100
LINKEDIN_ORIGIN = "https://www.linkedin.com/"


@register
class LinkedInCrawler(Crawler):
    platform = Platform.LINKEDIN
    url_patterns = (r"linkedin\.com/", r"(?i)linkedin[^/]*\.zip$", r"^upload://")

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
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                reason = f"export has {len(members)} members, more than {MAX_MEMBERS}"
                outcome.failures.append(ItemFailure(url, reason))
                return outcome
            by_name = {m.filename: m for m in members}
            if "Shares.csv" in by_name:
                data = read_member(archive, by_name["Shares.csv"], url, outcome)
                if data is not None:
                    self._read_shares(data, url, raw_key, outcome)
            for name in sorted(n for n in by_name if re.match(r"Articles/Articles/.+\.html$", n)):
                data = read_member(archive, by_name[name], url, outcome)
                if data is None:
                    continue
                try:
                    self._read_article(name, data, url, raw_key, outcome)
                except ValueError as err:  # an article the document model refuses
                    outcome.failures.append(ItemFailure(f"{url}#{name}", f"invalid article: {err}"))
        outcome.listing_complete = True
        return outcome

    def _read_export(self, url: str, outcome: CrawlOutcome) -> bytes | None:
        if url.startswith(UPLOAD_SCHEME):
            folder = self.ctx.upload_dir or upload_dir()
            try:
                data = read_upload(url.removeprefix(UPLOAD_SCHEME), folder, MAX_EXPORT_BYTES)
            except (OSError, ValueError) as err:
                outcome.failures.append(ItemFailure(url, f"cannot read upload: {err}"))
                return None
            outcome.fetched += 1
            return data
        result = self.fetch(url, outcome, accept=ZIP_TYPES)
        return result.content if result else None

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
                    self.document(
                        DocumentKind.POST,
                        url=link,
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
        href = (link.get("href") or "").strip() if link is not None else ""
        url = article_url(href) if href else where
        if url is None:
            outcome.failures.append(ItemFailure(where, f"article link {href!r} is not a web page"))
            return
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
            self.document(
                DocumentKind.ARTICLE,
                url=url,
                title=(title or name).strip(),
                text=text.strip(),
                published_at=parse_date(date),
                source_url=source,
                raw_key=raw_key,
                metadata={"export_file": name},
            )
        )


def is_export(url: str) -> bool:
    return url.startswith(UPLOAD_SCHEME) or urlsplit(url).path.lower().endswith(".zip")


def article_url(href: str) -> str | None:
    """The article's web address: absolute, or relative to linkedin.com; None for other links."""
    url = urljoin(LINKEDIN_ORIGIN, href)
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.hostname else None


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, outcome: CrawlOutcome
) -> bytes | None:
    """A member's bytes within the size and ratio bounds; else None with the reason recorded."""
    where = f"{source}#{info.filename}"
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > MAX_MEMBER_BYTES:
        reason = f"member inflates to {info.file_size} bytes, more than {MAX_MEMBER_BYTES}"
    elif ratio > MAX_RATIO:
        reason = f"member is compressed {ratio:.0f} times, more than {MAX_RATIO} (a ZIP bomb?)"
    else:
        try:
            with archive.open(info) as member:
                data = member.read(MAX_MEMBER_BYTES + 1)  # the declared size may lie
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, ValueError) as err:
            outcome.failures.append(ItemFailure(where, f"unreadable member: {err}"))
            return None
        if len(data) <= MAX_MEMBER_BYTES:
            return data
        reason = f"member inflates to more than {MAX_MEMBER_BYTES} bytes"
    outcome.failures.append(ItemFailure(where, reason))
    return None


def first_line(text: str, limit: int = 80) -> str:
    """A post's title: its first line, shortened at a word boundary."""
    line = text.strip().splitlines()[0].strip()
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + "…"
