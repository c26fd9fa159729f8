"""CPU-bound work over many items on every core: `CpuPool.map`.

The warehouse's language detection and MinHash signatures and the marts gate's PII scan are pure
Python, one item at a time, and hold the GIL: threads gain nothing. `CpuPool` hands batches to
worker processes, started by forkserver (never forked from a process that runs threads: Airflow
and Celery workers do), and only for batches large enough to pay for starting them; small runs
and one-core machines run in the caller. Results come back in order, so the output is the same
either way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from twin.closing import Closing

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# Starting the workers (each imports what the function needs) costs about a second; below this
# many items a batch runs in the caller.
MIN_BATCH = 200


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CpuPool(Closing):
    """Maps picklable, pure functions over batches in `processes` workers (default: one per
    usable core), started with the first batch of at least `min_batch` items and stopped on
    exit. With one process, or smaller batches, `map` runs in the caller."""

    def __init__(self, processes: int | None = None, min_batch: int = MIN_BATCH) -> None:
        self.processes = max(1, processes or usable_cores())
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`[fn(item) for item in items]`, in order; an exception of `fn` is raised here.

        Where workers cannot run (a daemonic process may not start children) or die, the work
        is done in the caller, with a warning: the functions are pure, so the result is the same.
        """
        if self.processes == 1 or len(items) < self.min_batch:
            return [fn(item) for item in items]
        if multiprocessing.current_process().daemon:
            log.warning("a daemonic process cannot start workers: %d items run here", len(items))
            self.processes = 1
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("forkserver")
            )
        chunk = max(1, len(items) // (4 * self.processes))
        try:
            return list(self._pool.map(fn, items, chunksize=chunk))
        except BrokenProcessPool:
            log.warning("a worker process died: %d items run here instead", len(items))
            self.close()
            self.processes = 1
            return [fn(item) for item in items]

    def close(self) -> None:
        """Stop the workers, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
