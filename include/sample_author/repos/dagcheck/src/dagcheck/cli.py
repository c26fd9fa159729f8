"""The dagcheck command: lint files or directories, exit 1 on findings."""

from __future__ import annotations

import sys
from pathlib import Path

from dagcheck.rules import check_source


def dag_files(paths: list[str]) -> list[Path]:
    """Python files under the given paths, sorted."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        found.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return found


def main(argv: list[str] | None = None) -> int:
    """Lint the given paths (or file names on stdin with --stdin); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    names = sys.stdin.read().split() if args == ["--stdin"] else args
    findings = [f for path in dag_files(names) for f in check_source(str(path), path.read_text())]
    for finding in findings:
        print(finding)
    return 1 if findings else 0
