"""Server processes of the embedded stack: start in their own process group, track, stop.

A PID file records the PID, the process's start time and the program it runs (never its
arguments, which may name files holding secrets), so a PID reused by an unrelated process is never
mistaken for ours, and `stop` signals only process groups this stack started. PID files are
private (0600), in a private folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from twin.stack.files import private_dir, write_private


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file holds about one started server."""

    pid: int
    create_time: float
    program: str

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None when it is gone (or the PID was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


class ManagedProcess:
    """One server process of the stack, with its PID file and log under the stack's home."""

    def __init__(self, name: str, run_dir: Path, log_path: Path) -> None:
        self.name = name
        self.pid_path = run_dir / f"{name}.pid"
        self.log_path = log_path

    def record(self) -> ProcessRecord | None:
        """The PID file's record, or None when there is none or it is unreadable."""
        try:
            data = json.loads(self.pid_path.read_text())
            # Older files held the whole command line instead of the program.
            program = data.get("program") or next(iter(data.get("command") or []), "")
            return ProcessRecord(int(data["pid"]), float(data["create_time"]), str(program))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def rewrite_record(self) -> None:
        """Write an existing PID file again in today's private form (older ones were 0644 and
        held the whole command line)."""
        rec = self.record()
        if rec is not None:
            data = {"pid": rec.pid, "create_time": rec.create_time, "program": rec.program}
            write_private(self.pid_path, json.dumps(data))

    def running(self) -> psutil.Process | None:
        """The live server process, or None."""
        rec = self.record()
        return rec.process() if rec is not None else None

    def died(self) -> ProcessRecord | None:
        """The record of a server that was started and is gone without being stopped."""
        rec = self.record()
        return rec if rec is not None and rec.process() is None else None

    def start(
        self, command: list[str], env: dict[str, str], cwd: Path, user: str | None = None
    ) -> psutil.Process:
        """Start `command` in a new session (its own process group), logging to the log file."""
        private_dir(self.pid_path.parent)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
            )
        proc = psutil.Process(popen.pid)
        record = {"pid": popen.pid, "create_time": proc.create_time(), "program": command[0]}
        write_private(self.pid_path, json.dumps(record))
        return proc

    def stop(self, timeout_s: float = 15.0) -> bool:
        """Stop the whole process group: SIGTERM, then SIGKILL after `timeout_s`.

        A leader that died leaves its group behind (Postgres backends, API workers): those are
        stopped too. Returns True when the server itself was still running.
        """
        rec = self.record()
        if rec is None:
            return False
        leader = rec.process()
        members = orphaned_members(rec) if leader is None else group_members(leader)
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.terminate()
        _, alive = psutil.wait_procs(members, timeout=timeout_s)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(alive, timeout=5)
        self.pid_path.unlink(missing_ok=True)
        return leader is not None

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log written)"
        return "\n".join(text.rstrip().splitlines()[-lines:])


def group_members(proc: psutil.Process) -> list[psutil.Process]:
    """The process, its descendants, and every process in its process group."""
    members = {proc.pid: proc}
    with contextlib.suppress(psutil.Error):
        members.update({child.pid: child for child in proc.children(recursive=True)})
    with contextlib.suppress(OSError):
        members.update({p.pid: p for p in processes_in_group(os.getpgid(proc.pid))})
    return list(members.values())


def orphaned_members(rec: ProcessRecord) -> list[psutil.Process]:
    """Processes left in the group of a dead leader.

    A group id is not reused while any member of the group lives, so members of group `rec.pid`
    are ours, unless the PID itself now belongs to another live process (then so does the group).
    """
    if psutil.pid_exists(rec.pid):
        with contextlib.suppress(psutil.Error):
            if psutil.Process(rec.pid).status() != psutil.STATUS_ZOMBIE:
                return []
    return [p for p in processes_in_group(rec.pid) if p.create_time() >= rec.create_time - 1.0]


def processes_in_group(pgid: int) -> list[psutil.Process]:
    """Every live process whose process group is `pgid`."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on `host:port` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
