"""A process pool for the crawler's CPU-bound work (HTML parsing, trafilatura extraction).

Fetching is I/O and runs on threads; extracting text from a page holds the GIL for tens of
milliseconds, so with threads alone the crawl is bound to one core. `Extractor.run` hands a
picklable function and its arguments to a worker process and waits for the answer, so the
crawler's threads keep fetching while the pages they already have are parsed on every core.
Workers are started by forkserver (never forked from a process that runs threads).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from twin.closing import Closing

T = TypeVar("T")


MIN_CORES_FOR_POOL = 4
# Extraction in the crawling process holds the GIL, so threads extracting at once gain nothing
# and only fight over it: measured with benchmarks/crawl.py (threads only, 16 threads, 2 cores),
# one extraction at a time cut the CPU per page by about half and the crawl time by a third.
_IN_PROCESS = threading.Lock()


def run_here(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in this process, one call at a time across its threads."""
    with _IN_PROCESS:
        return fn(*args)


def default_processes() -> int:
    """One worker per core on machines with at least `MIN_CORES_FOR_POOL` cores, else none.

    On 2 idle cores (benchmarks/crawl.py, 5 paired runs) one crawl alone is faster with the pool
    (median 7.9x the sequential baseline) than extracting in the crawling process (5.5x), but
    `twin_crawl` runs up to four sources at once, and a pool per source would put eight extraction
    processes on two cores: small machines extract in the crawling process, one call at a time.
    Set `crawl_extract_processes` to use a pool anyway.
    """
    cores = os.cpu_count() or 1
    return cores if cores >= MIN_CORES_FOR_POOL else 1


class Extractor(Closing):
    """Runs functions in `processes` worker processes (0: `default_processes()`; 1: in the
    caller, no pool, one call at a time: see `run_here`).

    `warm_up` (picklable, no arguments) runs once in each worker as it starts: the crawl passes
    `dispatch.warm_up` (the crawlers imported, one small page read), so their libraries and
    tables load before the first page arrives.
    """

    def __init__(self, processes: int = 0, warm_up: Callable[[], object] | None = None) -> None:
        self.processes = processes or default_processes()
        self._warm_up = warm_up
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _workers(self) -> ProcessPoolExecutor | None:
        """The pool, started on first use (a source with nothing to extract starts none)."""
        if self.processes <= 1:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("forkserver"),
                    initializer=self._warm_up,
                )
            return self._pool

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a worker (in this process when there is no pool); exceptions of `fn`
        are raised here. A pool that broke (a worker killed) is replaced once."""
        pool = self._workers()
        if pool is None:
            return run_here(fn, *args)
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            retry = self._workers()
            assert retry is not None
            return retry.submit(fn, *args).result()

    def start(self) -> None:
        """Start every worker now (each imports the extraction libraries once), rather than one
        by one as pages arrive."""
        pool = self._workers()
        if pool is not None:
            barrier = [pool.submit(time.sleep, 0.2) for _ in range(self.processes)]
            for future in barrier:
                future.result()

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
