"""GitHub (and any git host over http(s)): shallow-clone a repository and keep its docs and code.

One document per repository: the README is its text, docs and source files are its `files`
(each with its language). Binaries, vendored folders, huge files and symbolic links are skipped
with a reason. The remote's HEAD commit is the validator: an unchanged HEAD is not cloned again.

git is run so that it can reach nothing the HTTP client could not (see `twin.crawl.gitfetch`):
the repository URL goes through the SSRF guard once and git is pinned to the very addresses
checked, with proxies, redirects and every transport but http(s) off, and a size and time bound.
Files are read without following links, so a link to a file of the crawling host is never read.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from twin.crawl.base import Crawler, CrawlOutcome, ItemFailure
from twin.crawl.errors import FetchError
from twin.crawl.gitfetch import GitError, GitRemote
from twin.crawl.registry import register
from twin.domain.documents import DocumentKind, Platform, RepositoryFile

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
    url_patterns = (r"github\.com/[^/]+/[^/]+", r"\.git/?$")

    def crawl(self, url: str) -> CrawlOutcome:
        outcome = CrawlOutcome()
        policy = self.ctx.client.policy
        try:
            remote = GitRemote.checked(url, policy, self.ctx.git_limits)
        except FetchError as err:  # BlockedURL names the address class; else an unresolvable name
            outcome.failures.append(ItemFailure(url, err.reason))
            return outcome
        canonical = canonical_repo_url(url)
        try:
            head = remote.head()
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
                committed = remote.clone(Path(tmp) / "repo")
            except GitError as err:
                outcome.failures.append(ItemFailure(url, str(err)))
                return outcome
            files, skipped = read_repository(Path(tmp) / "repo")
        outcome.skipped += [ItemFailure(f"{canonical}#{path}", why) for path, why in skipped]
        readme = next((f for f in files if re.match(r"(?i)readme(\.\w+)?$", f.path)), None)
        name = canonical.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        outcome.documents.append(
            self.document(
                DocumentKind.REPOSITORY,
                url=canonical,
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


def canonical_repo_url(url: str) -> str:
    """`https://github.com/owner/repo` for GitHub URLs (no `.git`, no tree/blob suffix)."""
    parts = urlsplit(url)
    if parts.netloc.lower() in ("github.com", "www.github.com"):
        owner_repo = "/".join(parts.path.strip("/").split("/")[:2]).removesuffix(".git")
        return f"https://github.com/{owner_repo}"
    return url.rstrip("/")


def read_repository(root: Path) -> tuple[list[RepositoryFile], list[tuple[str, str]]]:
    """Text files worth learning from, and the skipped ones with why.

    Nothing is followed out of `root`: folders are walked without following links, a symbolic
    link is skipped, and a file is opened with O_NOFOLLOW and read only when it is a regular file.
    """
    files: list[RepositoryFile] = []
    skipped: list[tuple[str, str]] = []
    for path in _walk(root):
        rel = path.relative_to(root).as_posix()
        parts = set(path.relative_to(root).parts[:-1])
        if parts & SKIPPED_DIRS:
            skipped.append((rel, "vendored or generated folder"))
            continue
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            skipped.append((rel, "symbolic link (not followed)"))
            continue
        if not stat.S_ISREG(info.st_mode):
            skipped.append((rel, "not a regular file"))
            continue
        language = SPECIAL_FILES.get(path.name) or LANGUAGES.get(path.suffix.lower())
        if info.st_size > MAX_FILE_BYTES:
            skipped.append((rel, f"file larger than {MAX_FILE_BYTES // 1000} kB"))
            continue
        head = _read_no_follow(path)
        if head is None:
            skipped.append((rel, "symbolic link or unreadable file (not followed)"))
            continue
        if b"\0" in head:  # anywhere, not only near the start: text never holds a NUL
            skipped.append((rel, "binary file (holds a NUL byte)"))
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
        files.append(RepositoryFile(path=rel, language=language, text=text, size_bytes=len(head)))
    return files, skipped


def _walk(root: Path) -> list[Path]:
    """Every non-folder entry under `root` (links included, not followed), `.git` left out."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        found += [Path(folder) / name for name in names]
        # a link to a folder is listed among `dirs` but never entered: report it as a file
        found += [Path(folder) / d for d in dirs if (Path(folder) / d).is_symlink()]
    return sorted(found)


def _read_no_follow(path: Path) -> bytes | None:
    """The bytes of the regular file at `path`, or None when it is a link or not a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
