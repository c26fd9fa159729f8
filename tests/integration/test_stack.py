"""`twin stack up | status | down` on a stack of its own: idempotence, recovery, clean stops."""

import os
import shutil
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from tests.conftest import PROJECT_ROOT, scratch_home
from twin.stack import Stack, StackError

pytestmark = pytest.mark.integration


@pytest.fixture
def small_stack():
    home = scratch_home("twin-lifecycle-")
    stack = Stack(home, ("postgres", "mongo"))
    yield stack
    stack.down()
    shutil.rmtree(home, ignore_errors=True)


def pids_of(stack: Stack) -> dict[str, int]:
    recs = {n: s.process.record() for n, s in stack.services.items()}
    return {name: rec.pid for name, rec in recs.items() if rec is not None}


def test_up_is_idempotent_recovers_a_killed_service_and_down_leaves_nothing(small_stack) -> None:
    first = small_stack.up()
    assert first.started == ["postgres", "mongo"]
    pids = pids_of(small_stack)
    group = [p for pid in pids.values() for p in psutil.process_iter() if os.getpgid(p.pid) == pid]

    second = small_stack.up()
    assert second.started == [] and second.reused == ["postgres", "mongo"]
    assert pids_of(small_stack) == pids

    os.kill(pids["mongo"], signal.SIGKILL)
    psutil.Process(pids["mongo"]).wait(5)
    states = {s.name: s.state for s in small_stack.status()}
    assert states["mongo"] == "unhealthy" and states["postgres"] == "healthy"

    third = small_stack.up()
    assert third.started == ["mongo"]
    assert {s.name: s.state for s in third.statuses}["mongo"] == "healthy"
    group += [
        p for p in psutil.process_iter() if os.getpgid(p.pid) == pids_of(small_stack)["mongo"]
    ]

    assert sorted(small_stack.down()) == ["mongo", "postgres"]
    alive = [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert {s.state for s in small_stack.status()} == {"stopped"}

    again = small_stack.up()  # a second up after down works, on the same data
    assert again.started == ["postgres", "mongo"]


def test_a_service_that_cannot_start_is_named_and_nothing_is_left_half_started(
    small_stack, monkeypatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("TWIN_PORT_MONGO", str(taken.getsockname()[1]))

        with pytest.raises(StackError, match=r"^mongo .*") as err:
            small_stack.up()

    assert "mongo.log" in str(err.value)
    assert pids_of(small_stack) == {}
    assert {s.state for s in small_stack.status()} == {"stopped"}


def test_status_command_prints_every_service_and_its_url(small_stack) -> None:
    small_stack.up()
    result = subprocess.run(
        [sys.executable, "-m", "twin.cli", "stack", "status", "--home", str(small_stack.home)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    for name in ("postgres", "mongo", "triton", "mlflow", "airflow"):
        assert name in result.stdout
    assert "healthy" in result.stdout and "mongodb://127.0.0.1:" in result.stdout
