"""Uploaded crawl inputs: LinkedIn data exports placed in the upload folder named in settings.

A LinkedIn export is a ZIP the member downloads; it has no public URL. Rather than letting a
crawl link name any path of the host, an export is put in the upload folder
(`TWIN_CRAWL_UPLOAD_DIR`, default `<stack home>/uploads`) and named `upload://<file name>`. Only a
plain file name is accepted (no folders, no `..`), and the file is opened without following links,
so an upload can never read anything outside that folder.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from twin.settings import Settings, load_settings

UPLOAD_SCHEME = "upload://"
UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,200}\.zip$")


def upload_dir(settings: Settings | None = None) -> Path:
    """The upload folder: `crawl_upload_dir`, else `<home>/uploads`."""
    settings = settings or load_settings()
    return Path(settings.crawl_upload_dir or settings.home / "uploads")


def upload_problem(name: str, folder: Path) -> str | None:
    """Why `name` is not a readable upload in `folder`, or None."""
    if not UPLOAD_NAME.match(name) or ".." in name:
        return f"upload name {name!r} is not a plain .zip file name"
    path = folder / name
    try:
        info = path.lstat()
    except OSError:
        return f"no upload named {name!r} in the upload folder {folder}"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return f"upload {name!r} is not a regular file"
    return None


def read_upload(name: str, folder: Path, max_bytes: int) -> bytes:
    """The bytes of upload `name`; raises ValueError (bad name, too large) or OSError."""
    problem = upload_problem(name, folder)
    if problem:
        raise ValueError(problem)
    fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"upload {name!r} is not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"upload {name!r} is larger than {max_bytes} bytes")
        return handle.read(max_bytes + 1)[:max_bytes]
