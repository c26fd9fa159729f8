"""`timed_calls`: requests kept in flight together, answers in order, failures in place."""

from __future__ import annotations

import threading

import pytest

from twin.serving.client import timed_calls


def test_calls_are_in_flight_together_and_answers_keep_their_order() -> None:
    # every call waits for the other two: run one after another, the barrier would break
    barrier = threading.Barrier(3, timeout=5)

    def call(x: int) -> int:
        barrier.wait()
        return x * 10

    results = timed_calls(call, [1, 2, 3], workers=3)

    assert [r for r, _ in results] == [10, 20, 30]
    assert all(ms >= 0 for _, ms in results)


def test_one_failure_is_returned_in_its_place_and_loses_nothing() -> None:
    def call(x: int) -> int:
        if x == 2:
            raise RuntimeError("model unavailable")
        return x

    results = timed_calls(call, [1, 2, 3], workers=2)

    assert results[0][0] == 1 and results[2][0] == 3
    assert isinstance(results[1][0], RuntimeError)


@pytest.mark.parametrize("workers", [1, 8])
def test_one_worker_or_one_item_runs_in_the_caller(workers: int) -> None:
    caller = threading.get_ident()
    threads = timed_calls(lambda _: threading.get_ident(), ["only"], workers)
    assert threads[0][0] == caller
