"""GitHub (and any git host): shallow-clone a repository and keep its README, docs and code.

One document per repository: the README is its text, docs and source files are its `files`
(each with its language). Binaries, vendored folders and huge files are skipped with a reason.
The remote's HEAD commit is the validator: an unchanged HEAD is not cloned again. https URLs go
through the same SSRF guard as the HTTP client, git may only use http(s) and file transports,
and redirects are not followed.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.dispatch import register
from twin.crawl.ssrf import check_url
from twin.domain.documents import DocumentKind, Platform, RawDocument, RepositoryFile

GIT_TIMEOUT_S = 300
MAX_FILE_BYTES = 200_000
MAX_REPO_FILES = 2_000
SKIPPED_DIRS = {
    ".git",
    "vendor",
    "vendored",
    "third_party",
    "node_modules",
    "dist",
    "build",
    ".venv",
    "venv",
    "__pycache__",
    "site-packages",
    ".tox",
    "target",
}
LANGUAGES = {
    ".py": "python",
    ".sql": "sql",
    ".go": "go",
    ".rs": "rust",
    ".js": "javascript",
    ".ts": "typescript",
    ".java": "java",
    ".kt": "kotlin",
    ".scala": "scala",
    ".rb": "ruby",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".sh": "shell",
    ".md": "markdown",
    ".rst": "restructuredtext",
    ".txt": "text",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".ipynb": "jupyter",
    ".r": "r",
    ".jl": "julia",
    ".swift": "swift",
    ".cs": "csharp",
    ".php": "php",
    ".lua": "lua",
    ".html": "html",
    ".css": "css",
    ".cfg": "ini",
    ".ini": "ini",
}
SPECIAL_FILES = {"Makefile": "make", "Dockerfile": "dockerfile", "LICENSE": "text"}
DATA_SUFFIXES = {".jsonl", ".csv", ".parquet", ".lock"}
# Dependency manifests and lock files: generated or boilerplate, not the author's writing.
DEPENDENCY_FILES = {
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "go.sum",
    "poetry.lock",
    "Pipfile.lock",
    "Cargo.lock",
    "uv.lock",
    "composer.lock",
}


@register
class GitHubCrawler(Crawler):
    platform = Platform.GITHUB
    url_patterns = (r"github\.com/[^/]+/[^/]+", r"\.git/?$", r"^file://")

    def crawl(self, url: str) -> CrawlOutcome:
        outcome = CrawlOutcome()
        remote = clone_source(url)
        if urlsplit(remote).scheme in ("http", "https"):
            try:
                check_url(remote, tuple(self.ctx.client.policy.allow_private_hosts))
            except Exception as err:  # BlockedURL: the reason names the address class
                outcome.failures.append(ItemFailure(url, str(getattr(err, "reason", err))))
                return outcome
        canonical = canonical_repo_url(url)
        try:
            head = remote_head(remote)
        except GitError as err:
            outcome.failures.append(ItemFailure(url, str(err)))
            return outcome
        outcome.fetched += 1
        outcome.listing_complete = True
        known = self.ctx.known_validators([canonical]).get(canonical, (None, None))
        if known[0] == head:
            outcome.not_modified.append(canonical)
            return outcome
        with tempfile.TemporaryDirectory(prefix="twin-git-") as tmp:
            try:
                clone(remote, f"{tmp}/repo")
                committed = run_git(["-C", f"{tmp}/repo", "log", "-1", "--format=%cI"]).strip()
            except GitError as err:
                outcome.failures.append(ItemFailure(url, str(err)))
                return outcome
            files, skipped = read_repository(Path(tmp) / "repo")
        outcome.skipped += [ItemFailure(f"{canonical}#{path}", why) for path, why in skipped]
        readme = next((f for f in files if re.match(r"(?i)readme(\.\w+)?$", f.path)), None)
        name = canonical.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        outcome.documents.append(
            RawDocument(
                url=canonical,
                platform=self.platform,
                kind=DocumentKind.REPOSITORY,
                author=self.ctx.author,
                title=name,
                text=readme.text if readme else "",
                published_at=datetime.fromisoformat(committed).astimezone(UTC)
                if committed
                else None,
                files=tuple(f for f in files if f is not readme),
                source_url=url,
                metadata={
                    "commit": head,
                    "files": len(files),
                    "skipped_files": len(skipped),
                    "languages": sorted({f.language for f in files}),
                },
            )
        )
        outcome.validators[canonical] = (head, None)
        return outcome


class GitError(RuntimeError):
    """A git command failed; the message carries git's own last words."""


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",  # never wait for credentials
            "GIT_ALLOW_PROTOCOL": "http:https:file",  # no ext::, ssh or git:// transports
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.followRedirects",
            "GIT_CONFIG_VALUE_0": "false",
        }
    )
    return env


def run_git(args: list[str]) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            env=git_env(),
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} timed out after {GIT_TIMEOUT_S} s") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitError(f"git {args[0]} failed: {last}")
    return result.stdout


def clone(remote: str, target: str) -> None:
    """A shallow clone; a full one where the server cannot do shallow (git's dumb HTTP)."""
    try:
        run_git(["clone", "--depth", "1", "--no-tags", "--single-branch", remote, target])
    except GitError as err:
        if "shallow" not in str(err):
            raise
        run_git(["clone", "--no-tags", "--single-branch", remote, target])


def remote_head(remote: str) -> str:
    """The commit the remote's HEAD points at."""
    out = run_git(["ls-remote", remote, "HEAD"]).split()
    if not out:
        raise GitError("git ls-remote: the repository has no HEAD (empty repository?)")
    return out[0]


def clone_source(url: str) -> str:
    """What git clones: the URL itself, or a local path for file:// and plain paths."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    return url


def canonical_repo_url(url: str) -> str:
    """`https://github.com/owner/repo` for GitHub URLs (no `.git`, no tree/blob suffix)."""
    parts = urlsplit(url)
    if parts.netloc.lower() in ("github.com", "www.github.com"):
        owner_repo = "/".join(parts.path.strip("/").split("/")[:2]).removesuffix(".git")
        return f"https://github.com/{owner_repo}"
    if not parts.scheme:
        return Path(url).resolve().as_uri()
    return url.rstrip("/")


def read_repository(root: Path) -> tuple[list[RepositoryFile], list[tuple[str, str]]]:
    """Text files worth learning from, and the skipped ones with why."""
    files: list[RepositoryFile] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        parts = set(path.relative_to(root).parts[:-1])
        if path.is_dir() or ".git" in path.relative_to(root).parts:
            continue
        if parts & SKIPPED_DIRS:
            skipped.append((rel, "vendored or generated folder"))
            continue
        size = path.stat().st_size
        language = SPECIAL_FILES.get(path.name) or LANGUAGES.get(path.suffix.lower())
        if size > MAX_FILE_BYTES:
            skipped.append((rel, f"file larger than {MAX_FILE_BYTES // 1000} kB"))
            continue
        head = path.read_bytes()
        if b"\0" in head[:8192]:
            skipped.append((rel, "binary file"))
            continue
        if path.name in DEPENDENCY_FILES:
            skipped.append((rel, "dependency manifest or lock file"))
            continue
        if language is None or path.suffix.lower() in DATA_SUFFIXES:
            skipped.append((rel, "not source or documentation"))
            continue
        if len(files) >= MAX_REPO_FILES:
            skipped.append((rel, f"repository has more than {MAX_REPO_FILES} files"))
            continue
        text = head.decode("utf-8", errors="replace")
        files.append(RepositoryFile(path=rel, language=language, text=text, size_bytes=size))
    return files, skipped
