"""Crawl throughput: the polite concurrent crawler against a one-request-at-a-time baseline.

The sample author's site is built with 300 extra blog articles and served on loopback with 20 ms
of added latency per response. Each mode reads the same 300 pages, listed in a sitemap:

- download stage: `PoliteClient` fetches with its per-host limits vs a plain sequential httpx loop;
- whole crawler: `BlogCrawler` (fetch, robots.txt, extraction to markdown, archive) limited to one
  request at a time and extracting in its own process (the sequential baseline), vs the same
  crawler at the configured per-host limits on threads only, vs threads plus the extraction
  process pool (`--processes`, 0 = one per core; `twin crawl` uses it on 4+ cores).

Ratios are measured in the same run. Extraction is CPU work: with threads only it is bound to one
core by the GIL; the process pool spreads it over every core, so the whole-crawler ratio is bounded
by the machine's cores and the added latency (higher latency leaves more room for concurrency).

Each crawler mode also reports its CPU per page: the crawling process and its extraction workers
(not the site's server). The stages are then measured alone, in this process: the download by
`PoliteClient` (its threads as in the crawl), extraction (`read_article`, one page at a time) and
the archive write.

    python benchmarks/crawl.py [--pages 300] [--scale 1] [--latency-ms 20] [--concurrency 16]
                               [--rate 400] [--processes 0]

`--scale` multiplies `--pages` (0.1 for a quick run, 10 for 3000 pages).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from sample_author.site import build_site
from twin.crawl.base import CrawlContext
from twin.crawl.blog import BlogCrawler, read_article
from twin.crawl.dispatch import warm_up
from twin.crawl.http import FetchResult, PoliteClient
from twin.crawl.policy import CrawlPolicy
from twin.crawl.pool import Extractor
from twin.stack.process import free_port
from twin.store.object_store import LocalObjectStore

PLACEHOLDER = "http://sample-author.invalid"
SERVER_PIDS: set[int] = set()


def crawler_cpu_s() -> float:
    """CPU seconds of this process and its children (extraction workers), the server's aside."""
    me = psutil.Process()
    total = me.cpu_times().user + me.cpu_times().system
    for child in me.children(recursive=True):
        if child.pid not in SERVER_PIDS:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                total += times.user + times.system
    return total


@contextlib.contextmanager
def served(site: Path, latency_ms: float):
    """The site served by its own process (as the internet would be); yields its base URL.

    The server's process id is `SERVER_PIDS`' last entry while it runs (its CPU is not the
    crawler's)."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sample_author",
            "serve",
            "--site-dir",
            str(site),
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
            "--burst-limit",
            "0",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS.add(server.pid)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/robots.txt", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


def write_sitemap(site: Path, paths: list[str]) -> str:
    """A sitemap listing exactly the benchmark pages; returns its path on the server."""
    entries = "\n".join(f"<url><loc>{PLACEHOLDER}{p}</loc></url>" for p in paths)
    (site / "bench-sitemap.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{entries}\n</urlset>\n'
    )
    return "/bench-sitemap.xml"


def sequential_download(urls: list[str]) -> float:
    with httpx.Client(timeout=30) as client:
        began = time.perf_counter()
        for url in urls:
            client.get(url).raise_for_status()
        return time.perf_counter() - began


def polite_download(
    urls: list[str], policy: CrawlPolicy, workers: int
) -> tuple[float, float, list[FetchResult]]:
    """(seconds, CPU seconds, the pages) of fetching `urls` on `workers` threads."""
    with PoliteClient(policy) as client, ThreadPoolExecutor(workers) as pool:
        began, cpu = time.perf_counter(), time.process_time()
        pages = list(pool.map(client.fetch, urls))
        return time.perf_counter() - began, time.process_time() - cpu, pages


def stage_cpu_ms(
    pages: list[FetchResult], download_cpu_s: float, objects: Path
) -> dict[str, float]:
    """CPU ms per page of each stage alone: download (measured by `polite_download`), extraction
    (decoding and `read_article`, one page at a time) and the archive write."""
    began = time.process_time()
    for page in pages:
        read_article(page.text(), page.final_url)
    extraction = time.process_time() - began
    archive = LocalObjectStore(objects)
    crawler = BlogCrawler(CrawlContext(None, archive, "Ada Lindqvist"))  # type: ignore[arg-type]
    began = time.process_time()
    for page in pages:
        crawler.archive(page.final_url, page.content, ".html")
    archived = time.process_time() - began
    seconds = {"download": download_cpu_s, "extraction": extraction, "archive": archived}
    return {stage: 1000 * cpu / len(pages) for stage, cpu in seconds.items()}


def crawl_with(
    sitemap: str, policy: CrawlPolicy, workers: int, objects: Path, processes: int = 1
) -> tuple[float, int, float]:
    """(seconds, documents, CPU seconds of the crawler and its workers) of one crawl."""
    with PoliteClient(policy) as client, Extractor(processes, warm_up) as extractor:
        extractor.start()  # workers start before the clock: a crawl run starts them once
        ctx = CrawlContext(
            client,
            LocalObjectStore(objects),
            "Ada Lindqvist",
            max_workers=workers,
            extractor=extractor if processes != 1 else None,
        )
        began, cpu = time.perf_counter(), crawler_cpu_s()
        outcome = BlogCrawler(ctx).crawl(sitemap)
        elapsed, cpu = time.perf_counter() - began, crawler_cpu_s() - cpu
    if outcome.failures:
        raise SystemExit(f"benchmark pages failed: {outcome.failures[:3]}")
    return elapsed, len(outcome.documents), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --pages")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16, help="per-host concurrency")
    parser.add_argument("--rate", type=float, default=400.0, help="per-host requests/s")
    parser.add_argument("--processes", type=int, default=0, help="extraction processes; 0: cores")
    args = parser.parse_args()
    n_pages = max(1, round(args.pages * args.scale))
    processes = args.processes or os.cpu_count() or 1  # the pool, even where the default has none

    home = Path(tempfile.mkdtemp(prefix="twin-bench-crawl-"))
    try:
        manifest = build_site(home / "site", extra_pages=n_pages)
        paths = [d.url for d in manifest.platforms["blog"].documents if d.synthetic][:n_pages]
        sitemap_path = write_sitemap(home / "site", paths)
        with served(home / "site", args.latency_ms) as base:
            allow = (base.removeprefix("http://"),)  # the one host:port the crawler may reach
            polite = CrawlPolicy(
                allow_private_hosts=allow,
                per_host_concurrency=args.concurrency,
                per_host_rate=args.rate,
            )
            one_at_a_time = CrawlPolicy(
                allow_private_hosts=allow, per_host_concurrency=1, per_host_rate=args.rate
            )
            urls = [base + p for p in paths]
            sitemap = base + sitemap_path
            seq_dl = sequential_download(urls)
            conc_dl, download_cpu, pages = polite_download(urls, polite, workers=args.concurrency)
            stages = stage_cpu_ms(pages, download_cpu, home / "o0")
            seq_crawl = crawl_with(sitemap, one_at_a_time, 1, home / "o1")
            conc_crawl = crawl_with(sitemap, polite, args.concurrency, home / "o2")
            pool_crawl = crawl_with(
                sitemap, polite, args.concurrency, home / "o3", processes=processes
            )
        crawls = [
            ("crawler: one request at a time (baseline)", seq_crawl),
            (f"crawler: {args.concurrency}/host, threads only", conc_crawl),
            (f"crawler: {args.concurrency}/host + {processes} extraction processes", pool_crawl),
        ]
        print(
            f"{n_pages} pages, {args.latency_ms:.0f} ms added latency per response, "
            f"{os.cpu_count()} CPU cores"
        )
        print(
            f"{'mode':<46} {'pages':>6} {'seconds':>8} {'pages/s':>8}"
            f" {'CPU ms/page':>12} {'ratio':>6}"
        )
        print_row("download: sequential httpx (baseline)", len(urls), seq_dl, None, 1.0)
        print_row(
            f"download: PoliteClient, {args.concurrency}/host",
            len(urls),
            conc_dl,
            download_cpu,
            seq_dl / conc_dl,
        )
        for name, (seconds, docs, cpu) in crawls:
            print_row(name, docs, seconds, cpu, seq_crawl[0] / seconds)
        split = ", ".join(f"{stage} {ms:.2f}" for stage, ms in stages.items())
        print(f"CPU ms per page by stage, alone: {split}; sum {sum(stages.values()):.2f}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def print_row(name: str, pages: int, seconds: float, cpu_s: float | None, ratio: float) -> None:
    cpu = f"{1000 * cpu_s / pages:.2f}" if cpu_s is not None else "-"
    print(f"{name:<46} {pages:>6} {seconds:>8.2f} {pages / seconds:>8.1f} {cpu:>12} {ratio:>5.1f}x")


if __name__ == "__main__":
    main()
