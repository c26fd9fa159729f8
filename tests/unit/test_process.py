"""Process groups and PID files of the embedded stack, on real processes."""

import json
import sys
import time
from pathlib import Path

import psutil

from twin.stack.process import ManagedProcess, free_port, port_is_free

# A parent that starts a child in its own process group, then both sleep.
PARENT_WITH_CHILD = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
)


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    managed = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "sleeper.log")
    proc = managed.start([sys.executable, "-c", PARENT_WITH_CHILD], {}, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while not proc.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = proc.children()[0]

    assert managed.running().pid == proc.pid
    assert managed.stop(timeout_s=5) is True
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE
    assert managed.running() is None and not managed.pid_path.exists()


def test_a_killed_leader_is_reported_dead_and_its_orphans_are_stopped(tmp_path: Path) -> None:
    managed = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "sleeper.log")
    proc = managed.start([sys.executable, "-c", PARENT_WITH_CHILD], {}, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while not proc.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = proc.children()[0]
    proc.kill()
    proc.wait(5)

    assert managed.running() is None
    assert managed.died() is not None and managed.died().pid == proc.pid
    assert managed.stop(timeout_s=5) is False  # the leader was already gone
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    managed = ManagedProcess("other", tmp_path / "run", tmp_path / "other.log")
    managed.pid_path.parent.mkdir(parents=True)
    # This test's own process, but recorded with another start time: a PID reused by someone else.
    me = psutil.Process()
    managed.pid_path.write_text(
        json.dumps({"pid": me.pid, "create_time": me.create_time() - 3600, "command": ["x"]})
    )
    assert managed.running() is None
    assert managed.stop() is False
    assert me.is_running()


def test_free_port_is_free() -> None:
    port = free_port()
    assert port_is_free(port)


def test_a_reused_pid_never_gets_its_group_signalled(tmp_path: Path) -> None:
    """A stale record whose PID now leads someone else's process group leaves that group alone."""
    other = ManagedProcess("theirs", tmp_path / "run", tmp_path / "theirs.log")
    theirs = other.start([sys.executable, "-c", PARENT_WITH_CHILD], {}, cwd=tmp_path)
    ours = ManagedProcess("ours", tmp_path / "run", tmp_path / "ours.log")
    ours.pid_path.write_text(
        json.dumps({"pid": theirs.pid, "create_time": theirs.create_time() - 3600, "command": []})
    )
    try:
        assert ours.stop(timeout_s=1) is False
        assert theirs.is_running() and theirs.status() != psutil.STATUS_ZOMBIE
    finally:
        other.stop(timeout_s=5)
