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

    python benchmarks/crawl.py [--pages 300] [--latency-ms 20] [--concurrency 16] [--rate 400]
                               [--processes 0]
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

from sample_author.site import build_site
from twin.crawl.base import CrawlContext
from twin.crawl.blog import BlogCrawler
from twin.crawl.dispatch import load_crawlers
from twin.crawl.http import PoliteClient
from twin.crawl.policy import CrawlPolicy
from twin.crawl.pool import Extractor
from twin.stack.process import free_port
from twin.store.object_store import LocalObjectStore

PLACEHOLDER = "http://sample-author.invalid"


@contextlib.contextmanager
def served(site: Path, latency_ms: float):
    """The site served by its own process (as the internet would be); yields its base URL."""
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


def polite_download(urls: list[str], policy: CrawlPolicy, workers: int) -> float:
    with PoliteClient(policy) as client, ThreadPoolExecutor(workers) as pool:
        began = time.perf_counter()
        list(pool.map(client.fetch, urls))
        return time.perf_counter() - began


def crawl_with(
    sitemap: str, policy: CrawlPolicy, workers: int, objects: Path, processes: int = 1
) -> tuple[float, int]:
    with PoliteClient(policy) as client, Extractor(processes, load_crawlers) as extractor:
        extractor.start()  # workers start before the clock: a crawl run starts them once
        ctx = CrawlContext(
            client,
            LocalObjectStore(objects),
            "Ada Lindqvist",
            max_workers=workers,
            extractor=extractor if processes != 1 else None,
        )
        began = time.perf_counter()
        outcome = BlogCrawler(ctx).crawl(sitemap)
        elapsed = time.perf_counter() - began
    if outcome.failures:
        raise SystemExit(f"benchmark pages failed: {outcome.failures[:3]}")
    return elapsed, len(outcome.documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16, help="per-host concurrency")
    parser.add_argument("--rate", type=float, default=400.0, help="per-host requests/s")
    parser.add_argument("--processes", type=int, default=0, help="extraction processes; 0: cores")
    args = parser.parse_args()
    processes = args.processes or os.cpu_count() or 1  # the pool, even where the default has none

    home = Path(tempfile.mkdtemp(prefix="twin-bench-crawl-"))
    try:
        manifest = build_site(home / "site", extra_pages=args.pages)
        paths = [d.url for d in manifest.platforms["blog"].documents if d.synthetic][: args.pages]
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
            rows = []
            seq_dl = sequential_download(urls)
            conc_dl = polite_download(urls, polite, workers=args.concurrency)
            rows.append(("download: sequential httpx (baseline)", seq_dl, len(urls), None))
            rows.append(
                (
                    f"download: PoliteClient, {args.concurrency}/host",
                    conc_dl,
                    len(urls),
                    seq_dl / conc_dl,
                )
            )
            seq_crawl, n_seq = crawl_with(sitemap, one_at_a_time, 1, home / "o1")
            conc_crawl, n_conc = crawl_with(sitemap, polite, args.concurrency, home / "o2")
            pool_crawl, n_pool = crawl_with(
                sitemap, polite, args.concurrency, home / "o3", processes=processes
            )
            rows.append(("crawler: one request at a time (baseline)", seq_crawl, n_seq, None))
            rows.append(
                (
                    f"crawler: {args.concurrency}/host, threads only",
                    conc_crawl,
                    n_conc,
                    seq_crawl / conc_crawl,
                )
            )
            rows.append(
                (
                    f"crawler: {args.concurrency}/host + {processes} extraction processes",
                    pool_crawl,
                    n_pool,
                    seq_crawl / pool_crawl,
                )
            )
        print(
            f"{args.pages} pages, {args.latency_ms:.0f} ms added latency per response, "
            f"{os.cpu_count()} CPU cores"
        )
        print(f"{'mode':<46} {'pages':>6} {'seconds':>8} {'pages/s':>8} {'ratio':>6}")
        for name, seconds, pages, ratio in rows:
            shown = f"{ratio:.1f}x" if ratio else "1.0x"
            print(f"{name:<46} {pages:>6} {seconds:>8.2f} {pages / seconds:>8.1f} {shown:>6}")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
