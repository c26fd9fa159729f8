"""Files written whole: a reader sees the old file or the new one, never half of one.

Every writer of the platform that replaces a file others may read (the stack's secrets and
configuration, the object store, Triton's model repository, training's worker files and datasets)
writes through `atomic_writer`: a fresh temporary name beside the target, created exclusively
(`O_EXCL`, so two writers never share one), private (0600) from the first byte when asked, then
renamed over the target. A writer that fails leaves no temporary behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (created 0700 when missing)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def temporary_name(path: Path) -> Path:
    """A name beside `path` no other writer uses (hidden, so globs of the folder skip it)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")


def _open_new(path: Path, *, private: bool, binary: bool) -> IO:
    fd = os.open(path, _FLAGS, PRIVATE_FILE_MODE if private else 0o666)
    try:
        if private:
            os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask can only narrow it; make it exact
        return os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, private: bool = False, sync: bool = False, binary: bool = False
) -> Iterator[IO]:
    """A handle on a temporary beside `path`, renamed over `path` when the block ends without an
    error (removed when it raises). `private`: mode 0600 from creation; `sync`: on disk before
    the rename (a crash keeps the old file or the whole new one)."""
    tmp = temporary_name(path)
    try:
        with _open_new(tmp, private=private, binary=binary) as handle:
            yield handle
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(
    path: Path, data: str | bytes, *, private: bool = False, sync: bool = False
) -> Path:
    """Replace `path` with `data` whole (see `atomic_writer`)."""
    with atomic_writer(path, private=private, sync=sync, binary=isinstance(data, bytes)) as out:
        out.write(data)
    return path


def create_exclusive(path: Path, text: str, *, private: bool = True) -> None:
    """Create `path`, which must not exist, with `text` on disk (FileExistsError otherwise)."""
    with _open_new(path, private=private, binary=False) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
