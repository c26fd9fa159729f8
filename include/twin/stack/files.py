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

from twin.store.files import create_exclusive, private_dir, temporary_name, write_atomic

__all__ = ["create_secret", "private_dir", "write_private"]


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` (replacing it atomically, on disk), readable by its owner only."""
    return write_atomic(path, text, private=True, sync=True)


def create_secret(
    path: Path, generate: Callable[[], str] = lambda: secrets.token_urlsafe(24)
) -> str:
    """The secret stored at `path`, made by `generate` on first use (0600, never overwritten).

    Concurrent callers agree: the first complete file to be linked into place wins.
    """
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    private_dir(path.parent)
    tmp = temporary_name(path)
    create_exclusive(tmp, generate())
    try:
        os.link(tmp, path)  # fails when another caller created it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()
