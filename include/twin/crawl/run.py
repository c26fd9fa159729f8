"""A crawl run: plan the sources of an author, crawl each into the raw store, summarise.

`twin_crawl` maps `crawl_source` over `plan_sources`, then calls `summarise`; `twin crawl` runs
the same three steps from the shell. One source's failure is recorded in its report; it never
stops the other sources.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from twin.crawl.base import CrawlContext, CrawlOutcome, ItemFailure
from twin.crawl.dispatch import crawler_for, warm_up
from twin.crawl.gitfetch import GitLimits
from twin.crawl.http import PoliteClient
from twin.crawl.policy import CrawlPolicy
from twin.crawl.pool import Extractor
from twin.crawl.uploads import UPLOAD_SCHEME, upload_dir, upload_problem
from twin.domain.documents import PLATFORM_KINDS, Platform, RawDocument
from twin.settings import Settings, load_settings
from twin.store.mongo import mongo_client, twin_database
from twin.store.object_store import object_store
from twin.store.raw_documents import RawDocumentStore

log = logging.getLogger(__name__)
MAX_FAILURES_KEPT = 50


class Source(BaseModel):
    """One link of an author to crawl, with the platform that reads it.

    A link refused at planning carries the reason in `rejected` (and the platform named for it,
    or "unknown"); it is reported as a failed source and never fetched.
    """

    author: str = Field(min_length=1)
    platform: str
    url: str = Field(min_length=1)
    rejected: str | None = None


class SourceReport(BaseModel):
    """What crawling one source did (also stored in `crawl_runs`)."""

    author: str
    platform: str
    url: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = Field(default_factory=list)
    skips: list[dict[str, str]] = Field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def crawl_policy(settings: Settings) -> CrawlPolicy:
    return CrawlPolicy(
        per_host_concurrency=settings.crawl_per_host_concurrency,
        per_host_rate=settings.crawl_per_host_rate,
        max_body_bytes=settings.crawl_max_body_bytes,
        allow_private_hosts=tuple(settings.crawl_allow_private_hosts),
        dns_server=settings.crawl_dns_server,
    )


def validate_link(
    url: str, platform: str | None = None, settings: Settings | None = None
) -> str | None:
    """Why a link cannot be crawled, or None when it can.

    Links are remote http(s) URLs; the one exception is a LinkedIn export uploaded to the upload
    folder, named `upload://<file name>`. Local paths and file:// URLs are refused.
    """
    if url.startswith(UPLOAD_SCHEME):
        if platform not in (None, Platform.LINKEDIN.value):
            return f"uploads are LinkedIn exports only, not {platform}"
        return upload_problem(url.removeprefix(UPLOAD_SCHEME), upload_dir(settings))
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            return "has no host"
        if parts.username or parts.password:
            return "carries credentials"
        return None
    if parts.scheme == "file" or url.startswith(("/", "~", ".")):
        return (
            "local files are not crawled: give a remote http(s) URL, or upload a LinkedIn "
            f"export to the upload folder and name it {UPLOAD_SCHEME}<file name>"
        )
    return f"unsupported scheme {parts.scheme or '(none)'!r}: crawl links are http(s) URLs"


def plan_sources(
    author: str,
    links: dict[str, list[str]] | list[str] | None = None,
    settings: Settings | None = None,
) -> list[dict]:
    """The sources to crawl: `links` per platform (or a flat list, dispatched by URL), else the
    links recorded for the author in `twin.authors` (`record_author_links`).

    A bad link is one item's failure: it is returned with the reason in `rejected` (its report
    says why and nothing is fetched for it) and the other links are crawled. A ValueError naming
    every problem is raised only when no link at all can be crawled.
    """
    settings = settings or load_settings()
    if not author or not author.strip():
        raise ValueError("author must be a non-empty name")
    links = links or configured_links(author, settings)
    if not links:
        raise ValueError(
            f"no links given for {author!r} and none recorded in {settings.mongo_database}.authors"
            " (`twin stack up --sample` records the sample author's)"
        )
    pairs: list[tuple[str | None, str]] = []
    if isinstance(links, dict):
        pairs = [(platform, url) for platform, urls in links.items() for url in urls]
    else:
        pairs = [(None, url) for url in links]
    sources, problems = [], []
    for platform, url in pairs:
        url = url.strip()
        reason = _link_problem(url, platform, settings)
        if reason is not None:
            problems.append(f"{url!r}: {reason}")
            rejected = Source(author=author, platform=platform or "unknown", url=url or "(empty)")
            sources.append(rejected.model_copy(update={"rejected": reason}))
            continue
        crawler = crawler_for(url, platform, settings.crawl_platform_prefixes)
        sources.append(Source(author=author, platform=crawler.platform.value, url=url))
    if len(problems) == len(sources):
        raise ValueError("invalid crawl links:\n  " + "\n  ".join(problems))
    unique = {(s.platform, s.url): s for s in sources}
    return [s.model_dump(mode="json") for s in unique.values()]


def configured_links(author: str, settings: Settings) -> dict[str, list[str]]:
    """The links recorded for the author in `twin.authors` (see `record_author_links`)."""
    with mongo_client(settings) as client:
        return RawDocumentStore(twin_database(client, settings)).author_links(author)


def record_author_links(
    author: str, links: dict[str, list[str]], settings: Settings | None = None
) -> bool:
    """Store `links` (per platform) as the author's: what a crawl without links reads.

    Every link is checked first; a bad one raises ValueError naming it and nothing is stored.
    Returns whether the stored links changed.
    """
    settings = settings or load_settings()
    if not author or not author.strip():
        raise ValueError("author must be a non-empty name")
    problems = [
        f"{platform}: {url!r}: {reason}"
        for platform, urls in links.items()
        for url in urls
        if (reason := _link_problem(url, platform, settings))
    ]
    if problems or not any(links.values()):
        raise ValueError(
            f"cannot record links for {author!r}:\n  " + "\n  ".join(problems or ["no links"])
        )
    with mongo_client(settings) as client:
        store = RawDocumentStore(twin_database(client, settings))
        store.ensure_indexes()
        return store.ensure_author(author.strip(), links)


def _link_problem(url: str, platform: str | None, settings: Settings) -> str | None:
    """Why `url` cannot be crawled (as `platform` when given), or None."""
    reason = validate_link(url, platform, settings)
    if reason is None:
        try:
            crawler_for(url, platform, settings.crawl_platform_prefixes)
        except ValueError as err:
            reason = str(err)
    return reason


def crawl_source(source: dict, settings: Settings | None = None) -> dict:
    """Crawl one source into the raw store; return its report (also when the source failed).

    Raises only when the raw store itself cannot be written (so an Airflow retry can help).
    """
    settings = settings or load_settings()
    src = Source.model_validate(source)
    began = time.monotonic()
    report = SourceReport(author=src.author, platform=src.platform, url=src.url)
    if src.rejected:
        log.warning("not crawled: %s: %s", src.url, src.rejected)
        report.failed, report.error = 1, f"invalid link: {src.rejected}"
        return report.model_dump()
    with mongo_client(settings) as client:
        store = RawDocumentStore(twin_database(client, settings))
        store.ensure_indexes()
        with (
            PoliteClient(crawl_policy(settings)) as http,
            Extractor(settings.crawl_extract_processes, warm_up) as extractor,
        ):
            ctx = CrawlContext(
                client=http,
                archive=object_store(settings),
                author=src.author,
                known_validators=store.known_validators,
                max_workers=settings.crawl_workers,
                upload_dir=upload_dir(settings),
                git_limits=GitLimits(
                    settings.crawl_git_timeout_s,
                    settings.crawl_git_max_bytes,
                    settings.crawl_git_max_files,
                ),
                extractor=extractor,
            )
            crawler = crawler_for(src.url, src.platform)(ctx)
            try:
                outcome = crawler.crawl(src.url)
            except Exception as err:  # the source as a whole is unreadable: recorded, not raised
                log.warning("crawl failed for %s: %s", src.url, err)
                outcome = CrawlOutcome()
                report.error = f"{type(err).__name__}: {err}"[:500]
        outcome.documents = [d for d in outcome.documents if _kind_allowed(d, outcome)]
        counts = store.upsert(outcome.documents)
        store.remember_validators(outcome.validators)
        if outcome.listing_complete:
            report.deleted = store.mark_missing(src.url, outcome.seen_urls())
    report.fetched = outcome.fetched
    report.new, report.changed = counts.new, counts.changed
    report.unchanged = counts.unchanged + len(outcome.not_modified)
    report.failed = len(outcome.failures) + (1 if report.error else 0)
    report.skipped = len(outcome.skipped)
    report.failures = [{"url": f.url, "reason": f.reason} for f in outcome.failures][
        :MAX_FAILURES_KEPT
    ]
    report.skips = [{"url": f.url, "reason": f.reason} for f in outcome.skipped][:MAX_FAILURES_KEPT]
    report.seconds = round(time.monotonic() - began, 2)
    log.info(
        "%s %s: %d fetched, %d new, %d changed, %d unchanged, %d failed, %d skipped",
        src.platform,
        src.url,
        report.fetched,
        report.new,
        report.changed,
        report.unchanged,
        report.failed,
        report.skipped,
    )
    return report.model_dump()


def _kind_allowed(doc: RawDocument, outcome: CrawlOutcome) -> bool:
    """Whether `doc`'s kind is one its platform publishes (`PLATFORM_KINDS`); else recorded."""
    if doc.kind in PLATFORM_KINDS[doc.platform]:
        return True
    reason = f"a {doc.platform.value} document cannot be a {doc.kind.value}"
    outcome.failures.append(ItemFailure(doc.url, reason))
    return False


class CrawlIncomplete(RuntimeError):
    """Some planned sources produced no report (their task failed); the run is recorded."""


def summarise(
    reports: list[dict],
    settings: Settings | None = None,
    started_at: datetime | None = None,
    planned: list[dict] | None = None,
) -> dict:
    """Record the run in `crawl_runs`, log a readable summary; return totals and `has_changes`.

    A planned source without a report is recorded as failed, and CrawlIncomplete is raised
    once the run is stored, so a crashed crawl task is never mistaken for a clean run.
    """
    settings = settings or load_settings()
    parsed = [SourceReport.model_validate(r) for r in reports if r]
    reported = {(r.platform, r.url) for r in parsed}
    missing = [
        SourceReport(
            author=s["author"],
            platform=s["platform"],
            url=s["url"],
            failed=1,
            error="no report: the crawl task for this source failed",
        )
        for s in planned or []
        if (s["platform"], s["url"]) not in reported
    ]
    parsed += missing
    keys = ("fetched", "new", "changed", "unchanged", "deleted", "skipped", "failed")
    totals = {k: sum(getattr(r, k) for r in parsed) for k in keys}
    run = {
        "started_at": started_at or datetime.now(UTC),
        "finished_at": datetime.now(UTC),
        "authors": sorted({r.author for r in parsed}),
        "totals": totals,
        "has_changes": totals["new"] + totals["changed"] + totals["deleted"] > 0,
        "sources": [r.model_dump() for r in parsed],
    }
    with mongo_client(settings) as client:
        run_id = RawDocumentStore(twin_database(client, settings)).record_run(run)
    log.info("crawl run %s\n%s", run_id, render_summary(parsed, totals))
    if missing or not parsed:
        raise CrawlIncomplete(
            f"crawl run {run_id}: {len(missing)} of {len(parsed)} source(s) produced no report"
            if parsed
            else f"crawl run {run_id}: nothing was crawled"
        )
    return {"run_id": run_id, **totals, "has_changes": run["has_changes"]}


def render_summary(reports: list[SourceReport], totals: dict[str, int]) -> str:
    """A fixed-width table of the run, then each failure with its reason."""
    columns = ("new", "chg", "same", "del", "skip", "fail")
    widths = (4, 4, 5, 4, 4, 4)
    lines = [
        f"{'platform':<9} "
        + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
        + "  source"
    ]
    for r in reports:
        lines.append(
            f"{r.platform:<9} {r.new:>4} {r.changed:>4} {r.unchanged:>5} {r.deleted:>4} "
            f"{r.skipped:>4} {r.failed:>4}  {r.url}"
        )
    lines.append(
        f"{'total':<9} {totals['new']:>4} {totals['changed']:>4} {totals['unchanged']:>5} "
        f"{totals['deleted']:>4} {totals['skipped']:>4} {totals['failed']:>4}"
    )
    for r in reports:
        if r.error:
            lines.append(f"FAILED source {r.url}: {r.error}")
        lines += [f"failed {f['url']}: {f['reason']}" for f in r.failures]
    return "\n".join(lines)
