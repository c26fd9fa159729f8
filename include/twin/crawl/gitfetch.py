"""git, run so that it reaches only what the SSRF guard allowed, within a size and time bound.

git resolves host names itself, honours proxy variables and user configuration, speaks several
transports and clones without limits. `GitRemote` closes each of those doors:

- the URL is checked by the SSRF guard once (`check_and_resolve`) and git is pinned to the
  addresses checked (`http.curloptResolve`), so a second lookup cannot answer differently;
- git runs with an environment built from scratch (no proxy variables, no user or system
  configuration, no credential prompts), `http.proxy` empty, redirects refused, and only the
  http and https transports allowed;
- every command has a time limit, and a clone is stopped once its folder outgrows `max_bytes`
  or holds more than `max_files` files (empty files cost no bytes but an inode each);
- the clone is made without a checkout first, and the tree it would write is counted and sized
  from git's own listing: a repository over either limit is refused before a file is written.
  A refused clone leaves no folder behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from twin.crawl.policy import CrawlPolicy
from twin.crawl.ssrf import check_and_resolve, dns_resolver

POLL_S = 0.2


class GitError(RuntimeError):
    """A git command failed; the message carries git's own last words or the limit it hit."""


@dataclass(frozen=True)
class GitLimits:
    """How long one git command may run, and how large a clone may grow in bytes and files."""

    timeout_s: float = 300.0
    max_bytes: int = 200_000_000
    max_files: int = 100_000


@dataclass(frozen=True)
class GitRemote:
    """A repository URL the SSRF guard accepted, with the addresses git is pinned to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]
    limits: GitLimits = GitLimits()

    @classmethod
    def checked(cls, url: str, policy: CrawlPolicy, limits: GitLimits | None = None) -> GitRemote:
        """The remote for `url`; raises BlockedURL (or FetchError when the name does not
        resolve) exactly as the HTTP client would refuse the URL."""
        resolver = dns_resolver(policy.dns_server) if policy.dns_server else None
        host, port, addresses = check_and_resolve(url, policy.allow_private_hosts, resolver)
        return cls(url, host, port, tuple(addresses), limits or GitLimits())

    def head(self) -> str:
        """The commit the remote's HEAD points at."""
        out = self._run(["ls-remote", self.url, "HEAD"]).split()
        if not out:
            raise GitError("git ls-remote: the repository has no HEAD (empty repository?)")
        return out[0]

    def clone(self, target: Path) -> str:
        """A shallow clone into `target` (a full one where the server cannot do shallow, as
        git's dumb HTTP); returns the commit date of HEAD (ISO 8601).

        Raises GitError naming the limit when the repository is over `max_files` files or
        `max_bytes` bytes; `target` is then removed.
        """
        try:
            self._fetch(target)
            self._check_tree(target)
            self._run(["-C", str(target), "checkout", "-q"], watch=target)
            return self._run(["-C", str(target), "log", "-1", "--format=%cI"]).strip()
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    def _fetch(self, target: Path) -> None:
        """Clone without checking out: only `.git` is written."""
        options = ["--no-checkout", "--no-tags", "--single-branch"]
        try:
            self._run(["clone", "--depth", "1", *options, self.url, str(target)], watch=target)
        except GitError as err:
            if "shallow" not in str(err):
                raise
            shutil.rmtree(target, ignore_errors=True)
            self._run(["clone", *options, self.url, str(target)], watch=target)

    def _check_tree(self, target: Path) -> None:
        """Refuse HEAD's tree when checking it out would pass the file or byte limit."""
        files = size = 0
        with self._output(["-C", str(target), "ls-tree", "-r", "-l", "-z", "HEAD"]) as out:
            for entry in _entries(out):
                files += 1
                sized = len(entry) > 3 and entry[3].isdigit()  # a submodule has no size
                size += int(entry[3]) if sized else 0
                if files > self.limits.max_files:
                    raise GitError(
                        f"git checkout refused: repository has more than "
                        f"{self.limits.max_files} files"
                    )
        if size > self.limits.max_bytes:
            raise GitError(
                f"git checkout refused: repository larger than {self.limits.max_bytes} bytes "
                f"({size} bytes in {files} files)"
            )

    # --- running git --------------------------------------------------------------------------

    def _config(self) -> list[str]:
        """`-c` options: pinned addresses, no proxy, no redirects, no hooks or odd transports."""
        pinned = ",".join(f"[{a}]" if ":" in a else a for a in self.addresses)
        options = {
            "http.proxy": "",
            "http.followRedirects": "false",
            "http.lowSpeedLimit": "1000",
            "http.lowSpeedTime": str(int(min(self.limits.timeout_s, 60))),
            "protocol.allow": "never",
            "protocol.http.allow": "always",
            "protocol.https.allow": "always",
            "credential.helper": "",
            "core.askPass": "",
            "core.hooksPath": "/dev/null",
            "submodule.recurse": "false",
        }
        if not _is_address(self.host):  # an address literal is connected to as it is
            options["http.curloptResolve"] = f"{self.host}:{self.port}:{pinned}"
        return [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]

    def _run(self, args: list[str], watch: Path | None = None) -> str:
        """Run git with the guarded configuration and return its output; stop it past the
        time, size or file-count limit."""
        with self._output(args, watch) as out:
            return out.read().decode("utf-8", errors="replace")

    @contextmanager
    def _output(self, args: list[str], watch: Path | None = None) -> Iterator[BinaryIO]:
        """Run git as `_run` does; yield its standard output as a file, read from the start."""
        with tempfile.TemporaryDirectory(prefix="twin-git-home-") as home:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": home,
                "LANG": "C",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_ALLOW_PROTOCOL": "http:https",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
            }
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                process = subprocess.Popen(
                    ["git", *self._config(), *args], stdout=out, stderr=err, env=env
                )
                problem = self._watch(process, watch)
                name = args[0] if args[0] != "-C" else args[2]
                if problem:
                    raise GitError(f"git {name} stopped: {problem}")
                if process.returncode != 0:
                    err.seek(0)
                    stderr = err.read().decode("utf-8", errors="replace")
                    last = (stderr.strip().splitlines() or ["no output"])[-1]
                    raise GitError(f"git {name} failed: {last}")
                out.seek(0)
                yield out

    def _watch(self, process: subprocess.Popen, folder: Path | None) -> str | None:
        """Wait for `process`; kill it and say why when it runs too long or `folder` grows too
        large (in bytes or in files)."""
        deadline = time.monotonic() + self.limits.timeout_s
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL_S)
            problem = self._over_limits(folder) if folder is not None else None
            if process.returncode is not None:  # done; a fast clone may still be too large
                return problem
            if problem is None and time.monotonic() > deadline:
                problem = f"timed out after {self.limits.timeout_s:g} s"
            if problem:
                process.kill()
                process.wait()
                return problem

    def _over_limits(self, folder: Path) -> str | None:
        """What limit `folder` has passed, or None."""
        files, size = _usage(folder, self.limits.max_files)
        if files > self.limits.max_files:
            return f"repository has more than {self.limits.max_files} files"
        if size > self.limits.max_bytes:
            return f"repository larger than {self.limits.max_bytes} bytes"
        return None


def _entries(out: BinaryIO, chunk_bytes: int = 1 << 16) -> Iterator[list[str]]:
    """The entries of `git ls-tree -l -z` output, read a chunk at a time: [mode, type, object,
    size] (the path is dropped)."""
    pending = b""
    while chunk := out.read(chunk_bytes):
        *records, pending = (pending + chunk).split(b"\0")
        for record in records:
            yield record.split(b"\t", 1)[0].decode("ascii", errors="replace").split()
    if pending:
        yield pending.split(b"\t", 1)[0].decode("ascii", errors="replace").split()


def _is_address(host: str) -> bool:
    """Whether `host` is an IP address literal (no name to resolve)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _usage(folder: Path, max_files: int) -> tuple[int, int]:
    """Files (folders included) and bytes under `folder`, links not followed; (0, 0) while it
    does not exist. Counting stops past `max_files`: the folder is then over the limit."""
    files = size = 0
    for root, dirs, names in os.walk(folder):
        files += len(dirs) + len(names)
        if files > max_files:
            break
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return files, size
