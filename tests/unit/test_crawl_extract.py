"""Extraction in the crawling process: the crawl's threads take turns (they would only fight
over the GIL), and every call still returns its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from twin.crawl.pool import Extractor


def test_extraction_without_a_pool_runs_one_call_at_a_time() -> None:
    guard = threading.Lock()
    running, peak = 0, 0

    def read(page: int) -> int:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)  # long enough for the other threads to arrive meanwhile
        with guard:
            running -= 1
        return page * 2

    with Extractor(1) as extractor, ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda page: extractor.run(read, page), range(24)))

    assert answers == [page * 2 for page in range(24)]
    assert peak == 1
