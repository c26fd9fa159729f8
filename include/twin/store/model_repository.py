"""Where the Triton model repository lives: a folder on Triton's machine, or a prefix on S3.

`TRITON_MODEL_REPOSITORY` is a folder (the embedded stack's default, a shared volume in the
compose file) or `s3://bucket/prefix`, which Triton reads itself (`--model-repository=s3://...`):
then the deployment tasks of any worker write versions there through boto3, as they write the
object store, and twin_rag reads its routing and tokenizers there, so no file passes through
one machine's disk.

Paths are `/`-separated and relative to the repository root (`twin_llm/3/version.json`).
A folder repository writes atomically (temporary file, then rename); an S3 repository writes
whole objects, a version's `version.json` last, so a half-uploaded version is never taken for a
materialised one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlsplit

from twin.settings import Settings
from twin.store.files import write_atomic
from twin.store.object_store import S3ObjectStore, check_key

# An S3 repository must hold an object for Triton to accept its root as a directory.
ROOT_MARKER = "README"
ROOT_MARKER_TEXT = (
    "Triton model repository of the TwinOps platform: written by its deployment stage "
    "(twin.serving.repository), read by Triton and twin_rag.\n"
)


class RepositoryStore(ABC):
    """Files of the model repository by relative path."""

    url: str

    @abstractmethod
    def read_text(self, path: str) -> str | None:
        """The file's text, or None when there is none."""

    @abstractmethod
    def write_text(self, path: str, text: str, *, private: bool = False) -> None:
        """Write a whole file (`private`: only its owner may read it)."""

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def stamp(self, path: str) -> str | None:
        """Changes whenever the file does (modification time, ETag); None when missing."""

    @abstractmethod
    def put_tree(self, source: Path, path: str, *, last: str | None = None) -> None:
        """Make `path` hold exactly the files of the local folder `source` (consumed: it may be
        moved into place). `last`, a file name inside `source`, is written after the others."""

    @abstractmethod
    def fetch_tree(self, path: str, target: Path, names: tuple[str, ...] = ()) -> Path:
        """A local folder with the files under `path` (only those whose name is in `names`, when
        given): the folder itself for a folder repository, a copy in `target` otherwise."""

    @abstractmethod
    def mirror_tree(self, source: str, path: str) -> None:
        """Make `path` show the files under `source` (a link, or server-side copies)."""

    def local_root(self) -> Path | None:
        """The repository's folder when it is one on this machine's disk."""
        return None

    def staging(self) -> Path:
        """A new local folder to build a tree in before `put_tree`."""
        return Path(tempfile.mkdtemp(prefix="twin-stage-"))


class FolderRepository(RepositoryStore):
    """A repository folder on the disk Triton reads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, path: str) -> Path:
        return self.root / check_key(path)

    def local_root(self) -> Path:
        return self.root

    def read_text(self, path: str) -> str | None:
        try:
            return self._path(path).read_text()
        except FileNotFoundError:
            return None

    def write_text(self, path: str, text: str, *, private: bool = False) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text, private=private)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def stamp(self, path: str) -> str | None:
        try:
            return str(self._path(path).stat().st_mtime_ns)
        except FileNotFoundError:
            return None

    def staging(self) -> Path:
        # next to the versions, so moving a staged version into place is a rename
        return Path(tempfile.mkdtemp(dir=self.root, prefix=".stage-"))

    def put_tree(self, source: Path, path: str, *, last: str | None = None) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(source, target)

    def fetch_tree(self, path: str, target: Path, names: tuple[str, ...] = ()) -> Path:
        return self._path(path)

    def mirror_tree(self, source: str, path: str) -> None:
        link = self._path(path)
        if link.is_symlink():
            return
        shutil.rmtree(link, ignore_errors=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(self._path(source), link.parent))


class S3Repository(RepositoryStore):
    """A repository under an S3 prefix (Triton's `s3://` model repository)."""

    def __init__(self, bucket: str, prefix: str, client=None) -> None:
        self.objects = S3ObjectStore(bucket, prefix, client)
        self.url = self.objects.url
        if not self.objects.exists(ROOT_MARKER):
            self.objects.put(ROOT_MARKER, ROOT_MARKER_TEXT.encode(), "text/plain")

    @property
    def _client(self):
        return self.objects.client

    def read_text(self, path: str) -> str | None:
        try:
            return self.objects.get(path).decode()
        except KeyError:
            return None

    def write_text(self, path: str, text: str, *, private: bool = False) -> None:
        # objects are private to the bucket's owner unless a policy says otherwise
        self.objects.put(path, text.encode(), "text/plain")

    def exists(self, path: str) -> bool:
        return self.objects.exists(path)

    def stamp(self, path: str) -> str | None:
        head = self.objects.head(path)
        return None if head is None else head["ETag"]

    def _keys(self, path: str) -> list[str]:
        return self.objects.list(f"{check_key(path)}/")

    def put_tree(self, source: Path, path: str, *, last: str | None = None) -> None:
        check_key(path)
        files = sorted(p for p in source.rglob("*") if p.is_file())
        files.sort(key=lambda p: p.relative_to(source).as_posix() == last)
        wanted = {f"{path}/{p.relative_to(source).as_posix()}" for p in files}
        for stale in set(self._keys(path)) - wanted:
            self.objects.delete(stale)
        for file in files:
            key = self.objects.s3_key(f"{path}/{file.relative_to(source).as_posix()}")
            self._client.upload_file(str(file), self.objects.bucket, key)
        shutil.rmtree(source, ignore_errors=True)

    def fetch_tree(self, path: str, target: Path, names: tuple[str, ...] = ()) -> Path:
        for key in self._keys(path):
            relative = key[len(path) + 1 :]
            if names and relative.rpartition("/")[2] not in names:
                continue
            local = target / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(self.objects.bucket, self.objects.s3_key(key), str(local))
        return target

    def _etags(self, path: str) -> dict[str, str]:
        """ETag per file under `path`, by its path below it."""
        start = self.objects.s3_key(check_key(path)) + "/"
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.objects.bucket, Prefix=start
        )
        return {o["Key"][len(start) :]: o["ETag"] for p in pages for o in p.get("Contents", [])}

    def mirror_tree(self, source: str, path: str) -> None:
        wanted, present = self._etags(source), self._etags(path)
        for stale in set(present) - set(wanted):
            self.objects.delete(f"{path}/{stale}")
        bucket = self.objects.bucket
        for rest, etag in wanted.items():
            if present.get(rest) == etag:  # already copied
                continue
            self._client.copy_object(
                Bucket=bucket,
                Key=self.objects.s3_key(f"{path}/{rest}"),
                CopySource={"Bucket": bucket, "Key": self.objects.s3_key(f"{source}/{rest}")},
            )


def is_s3(location: str | Path | None) -> bool:
    return str(location or "").startswith("s3://")


def repository_store(settings: Settings) -> RepositoryStore:
    """The repository `TRITON_MODEL_REPOSITORY` names (a folder, or `s3://bucket/prefix`)."""
    location = settings.require("triton_model_repository")
    if is_s3(location):
        parts = urlsplit(str(location))
        return S3Repository(parts.netloc, parts.path)
    return FolderRepository(Path(location))


def triton_s3_url(location: str, endpoint: str | None) -> str:
    """Triton's spelling of an S3 repository: `s3://[endpoint/]bucket/prefix`, the endpoint
    (`http://host:port`) given for an S3 server other than AWS's."""
    parts = urlsplit(location)
    where = f"{endpoint.rstrip('/')}/" if endpoint else ""
    return f"s3://{where}{parts.netloc}{parts.path}"
