"""The object store for raw payloads and reports: a local folder (embedded) or S3 (production).

Both speak the same small API, keyed by `/`-separated object keys under the configured root
(`OBJECT_STORE_URL`: `file:///path` or `s3://bucket/prefix`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import unquote, urlsplit

from twin.settings import Settings
from twin.store.files import PRIVATE_DIR_MODE, private_dir, write_atomic


class ObjectStore(ABC):
    """Put, get, list and delete whole objects by key."""

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store `data` under `key`; return the object's URL."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; KeyError when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys that start with `prefix`, sorted."""


def check_key(key: str) -> str:
    """A key is relative and never climbs out of the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}: use relative `a/b/c` keys")
    return key


class LocalObjectStore(ObjectStore):
    """Objects as files under a folder only its owner may enter; writes are atomic (temporary
    file, then rename) and private (0600) from their first byte."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _private_parents(self, path: Path) -> None:
        """Create the root and the folders down to `path` with mode 0700; a root created wider
        (before objects were private) is narrowed, which closes everything below it."""
        private_dir(self.root)
        folder = self.root
        for part in path.relative_to(self.root).parts[:-1]:
            folder = folder / part
            folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        self._private_parents(path)
        # Unique per write: two threads may put the same key at once; the last rename wins.
        write_atomic(path, data, private=True)
        return path.as_uri()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):  # a folder is no object, as on S3
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not k.endswith(".tmp"))


class S3ObjectStore(ObjectStore):
    """Objects in an S3 bucket under a prefix; credentials from `aws_default` or the AWS chain."""

    def __init__(self, bucket: str, prefix: str, client=None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or s3_client()

    def s3_key(self, key: str) -> str:
        """The bucket key of `key` (under the prefix)."""
        return f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self.s3_key(key), Body=data, ContentType=content_type
        )
        return f"s3://{self.bucket}/{self.s3_key(key)}"

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.s3_key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        # HEAD the key itself: a listing by prefix would also find `a.html` for `a`.
        return self.head(key) is not None

    def head(self, key: str) -> dict | None:
        """The object's metadata (HEAD: `ETag`, `ContentLength`, ...); None when it is missing."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.s3_key(key))
        except self.client.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.s3_key(key))

    def list(self, prefix: str = "") -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start + prefix
        ):
            keys += [obj["Key"][len(start) :] for obj in page.get("Contents", [])]
        return sorted(keys)


def s3_client():
    """An S3 client from the `aws_default` Airflow connection when available, else boto3's chain."""
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id="aws_default").get_conn()
    except Exception:  # outside Airflow, or no such connection
        import boto3

        return boto3.client("s3")


def object_store(settings: Settings) -> ObjectStore:
    """The configured object store (`OBJECT_STORE_URL`), default `<stack home>/objects`."""
    url = settings.object_store_url or (settings.home / "objects").as_uri()
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        return S3ObjectStore(parts.netloc, parts.path)
    raise ValueError(f"OBJECT_STORE_URL must be file:// or s3://, got {url!r}")
