"""Files of the stack that hold secrets: created private (0600) from the first byte.

A file is written to a fresh temporary name opened with `O_CREAT | O_EXCL` and mode 0600, then
put in place atomically, so no reader ever sees it with wider permissions or half written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (created 0700 when missing)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def _write_new(path: Path, text: str) -> None:
    """Create `path` (must not exist) with mode 0600 and write `text`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask can only narrow it; make it exact
        with os.fdopen(fd, "w", closefd=False) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` (replacing it atomically), readable by its owner only."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_new(tmp, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def create_secret(
    path: Path, generate: Callable[[], str] = lambda: secrets.token_urlsafe(24)
) -> str:
    """The secret stored at `path`, made by `generate` on first use (0600, never overwritten).

    Concurrent callers agree: the first complete file to be linked into place wins.
    """
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_new(tmp, generate())
    try:
        os.link(tmp, path)  # fails when another caller created it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
