"""The author's code: real git repositories built from `repos/<name>/` with a fixed history.

Each repository is committed in several steps with fixed author/committer names and dates, so
the commit ids are the same on every build. Besides the authored sources, the build adds what
real repositories accumulate and a crawler should skip: a binary image, a vendored or
`node_modules` directory, and one generated file over 1 MB. A bare clone prepared with
`git update-server-info` sits next to each working copy for cloning over "dumb" HTTP.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sample_author.content import AUTHOR, REPOS_DIR, word_count

COMMITTER_EMAIL = "ada@lindqvist.example"
HUGE_FILE_BYTES = 1_300_000


@dataclass(frozen=True)
class CommitSpec:
    """One commit: when, why, and which paths it adds or rewrites."""

    date: str
    message: str
    paths: tuple[str, ...]
    early: tuple[str, ...] = ()  # markdown paths committed as a first, shorter draft


@dataclass(frozen=True)
class RepoSpec:
    """A repository: its history, languages and the paths a crawler should skip."""

    name: str
    description: str
    languages: tuple[str, ...]
    commits: tuple[CommitSpec, ...]
    skip_paths: tuple[str, ...]


@dataclass(frozen=True)
class BuiltRepo:
    """A repository on disk after `build_repo`."""

    spec: RepoSpec
    path: Path
    bare_path: Path
    head: str
    commits: int
    tracked: tuple[str, ...]

    @property
    def text_files(self) -> list[str]:
        """Tracked files outside the skip paths."""
        return [p for p in self.tracked if not _skipped(p, self.spec.skip_paths)]

    def doc_words(self) -> int:
        """Words in the README and docs/*.md."""
        return sum(
            word_count((self.path / p).read_text(encoding="utf-8"))
            for p in self.tracked
            if p == "README.md" or (p.startswith("docs/") and p.endswith(".md"))
        )


def _skipped(path: str, skip: tuple[str, ...]) -> bool:
    return any(path == s or (s.endswith("/") and path.startswith(s)) for s in skip)


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """A small, valid RGB PNG with a deterministic pattern."""
    rng = random.Random(seed)
    base = [rng.randrange(256) for _ in range(3)]
    rows = b"".join(
        b"\x00"
        + bytes(
            (base[c] + 37 * ((x // 4 + y // 4) % 2)) % 256 for x in range(width) for c in range(3)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def embeddings_fixture(min_bytes: int = HUGE_FILE_BYTES) -> bytes:
    """JSON lines of fake 32-dim embeddings; deterministic and just over `min_bytes`."""
    rng = random.Random(384)
    lines: list[bytes] = []
    size = 0
    n = 0
    while size < min_bytes:
        vector = [round(rng.uniform(-1, 1), 6) for _ in range(32)]
        line = (
            json.dumps(
                {"chunk_id": f"doc-{n // 8:05d}:{n % 8}", "model": "fixture@1", "embedding": vector}
            ).encode()
            + b"\n"
        )
        lines.append(line)
        size += len(line)
        n += 1
    return b"".join(lines)


def dag_corpus(min_bytes: int = HUGE_FILE_BYTES) -> bytes:
    """A generated JSON corpus of DAG descriptions for the linter's benchmark."""
    rng = random.Random(2024)
    verbs = ["load", "extract", "publish", "embed", "chunk", "score", "export", "check"]
    nouns = ["shipments", "invoices", "documents", "events", "customers", "routes", "scans"]
    dags = []
    size = 2
    n = 0
    while size < min_bytes:
        tasks = [f"{rng.choice(verbs)}_{rng.choice(nouns)}_{i}" for i in range(rng.randint(3, 12))]
        dag = {
            "dag_id": f"generated_{n:05d}",
            "schedule": rng.choice(["@daily", "@hourly", None]),
            "catchup": False,
            "retries": rng.randint(0, 3),
            "tasks": tasks,
        }
        size += len(json.dumps(dag)) + 3
        dags.append(dag)
        n += 1
    return (json.dumps(dags, indent=1) + "\n").encode()


VENDORED_MINHASH = '''"""minhash_lite 0.4.2 - vendored copy. Do not edit.

Upstream: example.org/minhash-lite
"""
import hashlib

MAX_HASH = (1 << 32) - 1


class MinHash:
    def __init__(self, num_perm=128, seed=1):
        self.num_perm = num_perm
        self.seed = seed
        self.values = [MAX_HASH] * num_perm

    def update(self, data):
        for i in range(self.num_perm):
            digest = hashlib.blake2b(data, digest_size=4, salt=str(self.seed + i).encode()).digest()
            value = int.from_bytes(digest, "little")
            if value < self.values[i]:
                self.values[i] = value

    def jaccard(self, other):
        same = sum(1 for a, b in zip(self.values, other.values) if a == b)
        return same / self.num_perm
'''

LEFT_PAD_JS = """'use strict';
module.exports = leftPad;
function leftPad(str, len, ch) {
  str = String(str);
  ch = ch === undefined ? ' ' : String(ch);
  while (str.length < len) str = ch + str;
  return str;
}
"""

APACHE_NOTICE = (
    f"Copyright 2023-2024 {AUTHOR.name}\n\nLicensed under the Apache License, "
    'Version 2.0 (the "License");\nyou may not use this file except in compliance '
    "with the License.\nYou may obtain a copy of the License at\n\n"
    "    http://www.apache.org/licenses/LICENSE-2.0\n"
)

GENERATED: dict[str, Callable[[], bytes]] = {
    "LICENSE": lambda: APACHE_NOTICE.encode(),
    ".gitignore": lambda: b"__pycache__/\n*.pyc\n.venv/\n/dist/\n/dagscan\n",
    "assets/logo.png": lambda: png_bytes(32, 32, seed=7),
    "assets/screenshot.png": lambda: png_bytes(48, 24, seed=11),
    "data/fixtures/embeddings_fixture.jsonl": embeddings_fixture,
    "testdata/large_dag_corpus.json": dag_corpus,
    "vendor/minhash_lite/__init__.py": lambda: VENDORED_MINHASH.encode(),
    "vendor/minhash_lite/LICENSE": lambda: (
        b"MIT License\n\nCopyright (c) 2021 minhash-lite authors\n"
    ),
    "package.json": lambda: (
        json.dumps(
            {"name": "dagcheck-docs", "private": True, "devDependencies": {"left-pad": "1.3.0"}},
            indent=2,
        )
        + "\n"
    ).encode(),
    "node_modules/left-pad/index.js": lambda: LEFT_PAD_JS.encode(),
    "node_modules/left-pad/package.json": lambda: (
        json.dumps(
            {"name": "left-pad", "version": "1.3.0", "main": "index.js", "license": "WTFPL"},
            indent=2,
        )
        + "\n"
    ).encode(),
    "node_modules/.package-lock.json": lambda: b'{"name": "dagcheck-docs", "lockfileVersion": 3}\n',
}


def early_draft(text: str) -> str:
    """The first section of a markdown file, as first committed."""
    return text.split("\n## ", 1)[0].rstrip() + "\n\nWork in progress.\n"


REPOS: tuple[RepoSpec, ...] = (
    RepoSpec(
        name="tidy-vectors",
        description="Keep a pgvector chunk table consistent with its sources.",
        languages=("Python", "SQL"),
        skip_paths=("vendor/", "assets/logo.png", "data/fixtures/embeddings_fixture.jsonl"),
        commits=(
            CommitSpec(
                "2023-10-05T09:12:00+02:00",
                "Initial commit: stale-chunk detection",
                (
                    "README.md",
                    "LICENSE",
                    ".gitignore",
                    "pyproject.toml",
                    "src/tidy_vectors/__init__.py",
                    "src/tidy_vectors/stale.py",
                    "tests/test_stale.py",
                ),
                early=("README.md",),
            ),
            CommitSpec(
                "2023-10-08T20:41:00+02:00",
                "Add chunk schema and stale-chunk query",
                ("sql/001_create_chunks.sql", "sql/002_stale_chunks.sql"),
            ),
            CommitSpec(
                "2023-10-21T11:05:00+02:00",
                "Refresh command with batched upserts",
                ("src/tidy_vectors/refresh.py", "src/tidy_vectors/cli.py"),
            ),
            CommitSpec(
                "2023-11-02T08:30:00+01:00",
                "Vendor minhash_lite for near-duplicate checks",
                ("vendor/minhash_lite/__init__.py", "vendor/minhash_lite/LICENSE"),
            ),
            CommitSpec(
                "2023-11-19T19:55:00+01:00",
                "Docs: design notes and operations runbook",
                ("docs/design.md", "docs/operations.md", "README.md"),
            ),
            CommitSpec(
                "2024-01-14T10:20:00+01:00",
                "Index swap script, logo and benchmark fixture",
                (
                    "sql/003_swap_index.sql",
                    "assets/logo.png",
                    "data/fixtures/embeddings_fixture.jsonl",
                ),
            ),
        ),
    ),
    RepoSpec(
        name="dagcheck",
        description="A small linter for Airflow DAG files.",
        languages=("Python", "Go"),
        skip_paths=(
            "node_modules/",
            "package.json",
            "assets/screenshot.png",
            "testdata/large_dag_corpus.json",
        ),
        commits=(
            CommitSpec(
                "2024-02-10T14:03:00+01:00",
                "dagcheck: rules DC001 to DC003",
                (
                    "README.md",
                    "LICENSE",
                    ".gitignore",
                    "pyproject.toml",
                    "src/dagcheck/__init__.py",
                    "src/dagcheck/rules.py",
                    "src/dagcheck/cli.py",
                    "tests/test_rules.py",
                ),
                early=("README.md",),
            ),
            CommitSpec(
                "2024-02-11T09:47:00+01:00",
                "Add an example DAG that passes every rule",
                ("examples/dags/load_shipments.py",),
            ),
            CommitSpec(
                "2024-03-03T21:15:00+01:00",
                "dagscan: fast DAG discovery in Go",
                ("go.mod", "cmd/dagscan/main.go", "cmd/dagscan/main_test.go"),
            ),
            CommitSpec(
                "2024-03-04T07:58:00+01:00",
                "Docs site tooling",
                (
                    "package.json",
                    "node_modules/left-pad/index.js",
                    "node_modules/left-pad/package.json",
                    "node_modules/.package-lock.json",
                ),
            ),
            CommitSpec(
                "2024-03-17T16:40:00+01:00",
                "Rules docs, changelog, screenshot and a large test corpus",
                (
                    "docs/rules.md",
                    "docs/changelog.md",
                    "assets/screenshot.png",
                    "testdata/large_dag_corpus.json",
                    "README.md",
                ),
            ),
        ),
    ),
)


def _git_env(date: str | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR.name,
        "GIT_AUTHOR_EMAIL": COMMITTER_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR.name,
        "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
        "TZ": "UTC",
        "LC_ALL": "C",
    }
    if date:
        env["GIT_AUTHOR_DATE"] = date
        env["GIT_COMMITTER_DATE"] = date
    return env


_GIT_OPTIONS = (
    "-c",
    "init.defaultBranch=main",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.autocrlf=false",
    "-c",
    "pack.threads=1",
    "-c",
    "gc.auto=0",
)


def git(cwd: Path, *args: str, date: str | None = None) -> str:
    """Run git in `cwd` with an isolated config; returns stdout, raises on failure."""
    result = subprocess.run(
        ["git", *_GIT_OPTIONS, *args],
        cwd=cwd,
        env=_git_env(date),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout


def file_content(spec: RepoSpec, path: str, commit: CommitSpec) -> bytes:
    """Bytes of `path` as of `commit`: an override, a generated file, or the authored source."""
    if path in GENERATED:
        return GENERATED[path]()
    data = (REPOS_DIR / spec.name / path).read_bytes()
    if path in commit.early:
        return early_draft(data.decode("utf-8")).encode("utf-8")
    return data


def build_repo(spec: RepoSpec, dest: Path) -> BuiltRepo:
    """Create the repository at `dest` (replacing it) and its bare clone at `dest`.git."""
    bare = dest.with_name(dest.name + ".git")
    for target in (dest, bare):
        if target.exists():
            shutil.rmtree(target)
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "--template=", "-b", "main")
    for commit in spec.commits:
        for path in commit.paths:
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file_content(spec, path, commit))
        git(dest, "add", "--", *commit.paths)
        git(dest, "commit", "-q", "-m", commit.message, date=commit.date)
    git(dest.parent, "clone", "-q", "--bare", "--no-local", dest.name, bare.name)
    git(bare, "remote", "remove", "origin")
    git(bare, "update-server-info")
    head = git(dest, "rev-parse", "HEAD").strip()
    tracked = tuple(sorted(git(dest, "ls-files").splitlines()))
    return BuiltRepo(spec, dest, bare, head, len(spec.commits), tracked)


def build_repos(git_dir: Path) -> list[BuiltRepo]:
    """Build every repository under `git_dir`; RuntimeError if git is not installed."""
    if shutil.which("git") is None:
        raise RuntimeError("building the sample git repositories needs the `git` command")
    git_dir.mkdir(parents=True, exist_ok=True)
    return [build_repo(spec, git_dir / spec.name) for spec in REPOS]
