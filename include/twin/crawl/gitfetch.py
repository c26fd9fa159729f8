"""git, run so that it reaches only what the SSRF guard allowed, within a size and time bound.

git resolves host names itself, honours proxy variables and user configuration, speaks several
transports and clones without limits. `GitRemote` closes each of those doors:

- the URL is checked by the SSRF guard once (`check_and_resolve`) and git is pinned to the
  addresses checked (`http.curloptResolve`), so a second lookup cannot answer differently;
- git runs with an environment built from scratch (no proxy variables, no user or system
  configuration, no credential prompts), `http.proxy` empty, redirects refused, and only the
  http and https transports allowed;
- every command has a time limit, and a clone is stopped once its folder outgrows `max_bytes`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from twin.crawl.policy import CrawlPolicy
from twin.crawl.ssrf import check_and_resolve, dns_resolver

POLL_S = 0.2


class GitError(RuntimeError):
    """A git command failed; the message carries git's own last words or the limit it hit."""


@dataclass(frozen=True)
class GitLimits:
    """How long one git command may run and how large a clone may grow."""

    timeout_s: float = 300.0
    max_bytes: int = 200_000_000


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
        git's dumb HTTP); returns the commit date of HEAD (ISO 8601)."""
        try:
            self._run(
                ["clone", "--depth", "1", "--no-tags", "--single-branch", self.url, str(target)],
                watch=target,
            )
        except GitError as err:
            if "shallow" not in str(err):
                raise
            shutil.rmtree(target, ignore_errors=True)
            full = ["clone", "--no-tags", "--single-branch", self.url, str(target)]
            self._run(full, watch=target)
        return self._run(["-C", str(target), "log", "-1", "--format=%cI"]).strip()

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
        """Run git with the guarded configuration; stop it past the time or size limit."""
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
                out.seek(0)
                err.seek(0)
                stdout = out.read().decode("utf-8", errors="replace")
                stderr = err.read().decode("utf-8", errors="replace")
        name = args[0] if args[0] != "-C" else args[2]
        if problem:
            raise GitError(f"git {name} stopped: {problem}")
        if process.returncode != 0:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise GitError(f"git {name} failed: {last}")
        return stdout

    def _watch(self, process: subprocess.Popen, folder: Path | None) -> str | None:
        """Wait for `process`; kill it and say why when it runs too long or `folder` grows too
        large."""
        deadline = time.monotonic() + self.limits.timeout_s
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL_S)
            too_large = folder is not None and _size(folder) > self.limits.max_bytes
            problem = f"repository larger than {self.limits.max_bytes} bytes" if too_large else None
            if process.returncode is not None:  # done; a fast clone may still be too large
                return problem
            if problem is None and time.monotonic() > deadline:
                problem = f"timed out after {self.limits.timeout_s:g} s"
            if problem:
                process.kill()
                process.wait()
                return problem


def _is_address(host: str) -> bool:
    """Whether `host` is an IP address literal (no name to resolve)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _size(folder: Path) -> int:
    """Bytes of the files under `folder` (links not followed); 0 while it does not exist."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total
