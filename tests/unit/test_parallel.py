"""`CpuPool` spreads a batch over worker processes and gives back what a loop would."""

from __future__ import annotations

import os

import pytest

from twin.parallel import CpuPool


def square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def fail_on_three(n: int) -> int:
    if n == 3:
        raise ValueError("three")
    return n


def test_a_large_batch_runs_in_workers_and_keeps_its_order() -> None:
    with CpuPool(processes=2, min_batch=4) as pool:
        done = pool.map(square_and_pid, list(range(40)))
    assert [square for square, _ in done] == [n * n for n in range(40)]
    assert os.getpid() not in {pid for _, pid in done}


def test_a_small_batch_or_one_process_runs_in_the_caller() -> None:
    with CpuPool(processes=2, min_batch=50) as pool:
        assert {pid for _, pid in pool.map(square_and_pid, [1, 2, 3])} == {os.getpid()}
    with CpuPool(processes=1, min_batch=1) as pool:
        assert {pid for _, pid in pool.map(square_and_pid, list(range(10)))} == {os.getpid()}


def test_an_item_that_fails_raises_in_the_caller() -> None:
    with CpuPool(processes=2, min_batch=2) as pool, pytest.raises(ValueError, match="three"):
        pool.map(fail_on_three, list(range(8)))


def exit_in_a_worker(item: tuple[int, int]) -> int:
    n, parent = item
    if n == 5 and os.getpid() != parent:
        os._exit(1)  # a worker killed mid-batch
    return n


def test_a_batch_whose_worker_dies_is_done_in_the_caller() -> None:
    items = [(n, os.getpid()) for n in range(10)]
    with CpuPool(processes=2, min_batch=2) as pool:
        assert pool.map(exit_in_a_worker, items) == list(range(10))
        assert pool.processes == 1  # and later batches stay here
