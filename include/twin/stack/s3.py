"""An S3-protocol server in the embedded stack: moto's server mode, as its own process.

`twin stack up --s3` starts it and points the platform's object store at a bucket on it
(`OBJECT_STORE_URL=s3://twinops/objects`), reached with boto3 and providers-amazon's S3Hook exactly
as production reaches AWS S3: the `aws_default` connection carries the endpoint, and stack.env
carries the `AWS_*` variables boto3's credential chain and endpoint resolution read.

moto has no persistence: objects live as long as the server process. `twin stack down`, or a
restart of a dead server, starts from an empty bucket (`up` says so whenever it starts the server).
moto accepts any signature, so the generated access key is what clients sign with, not a lock:
the server listens on loopback only.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from importlib.metadata import version
from typing import Any

from twin.stack.base import LOOPBACK, Service
from twin.stack.files import private_dir

BUCKET = "twinops"
PREFIX = "objects"
REPOSITORY_PREFIX = "triton"  # the Triton model repository (TritonService.on_s3)
# The region airflow_settings.yaml declares for production's aws_default connection.
REGION = "eu-north-1"
ACCESS_KEY_SECRET = "s3_access_key_id"  # their files in the stack's secrets folder
SECRET_KEY_SECRET = "s3_secret_access_key"
S3_MEMORY_NOTE = (
    f"s3: moto keeps objects in memory only: they last as long as its process, and "
    f"`twin stack down` (or a restart) empties s3://{BUCKET}"
)


def access_key_id() -> str:
    """An AWS-shaped access key id: AKIA and 16 upper-case letters or digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


class S3Service(Service):
    """moto's S3 server on loopback, with the object store's bucket created at start."""

    name = "s3"
    ports = ("s3",)
    bucket = BUCKET
    region = REGION

    @property
    def access_key_id(self) -> str:
        return self.ctx.secret(ACCESS_KEY_SECRET, access_key_id)

    @property
    def secret_access_key(self) -> str:
        return self.ctx.secret(SECRET_KEY_SECRET, lambda: secrets.token_urlsafe(30))

    def command(self) -> list[str]:
        moto_server = str(self.ctx.bin_dir / "moto_server")
        return [moto_server, "--host", LOOPBACK, "--port", str(self.port())]

    def env(self) -> dict[str, str]:
        env = super().env()
        # Objects over moto's in-memory buffer spill to temporary files: keep them in the stack's
        # home, private like the local object store's files.
        env["TMPDIR"] = str(private_dir(self.dir / "spool"))
        return env

    def client(self, timeout_s: float = 10.0) -> Any:
        """A boto3 S3 client for this server, with the stack's credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}
            ),
        )

    def check(self, timeout_s: float) -> str:
        client = self.client(timeout_s)
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if self.bucket not in names:
            return f"moto S3 {version('moto')} answers; bucket {self.bucket} not created yet"
        listing = client.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/", MaxKeys=1000)
        count = f"{listing.get('KeyCount', 0)}{'+' if listing.get('IsTruncated') else ''}"
        return f"moto S3 {version('moto')}; s3://{self.bucket}: {count} object(s), in memory"

    def after_start(self) -> None:
        """Create the object store's bucket (idempotent: a bucket already there is kept)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(
                Bucket=self.bucket,
                CreateBucketConfiguration={"LocationConstraint": self.region},
            )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port()}"

    def endpoints(self) -> dict[str, str]:
        connection = {
            "conn_type": "aws",
            "login": self.access_key_id,
            "password": self.secret_access_key,
            # S3Hook (providers-amazon) takes a custom endpoint from the extra's endpoint_url.
            "extra": {"endpoint_url": self.url, "region_name": self.region},
        }
        return {
            "OBJECT_STORE_URL": f"s3://{self.bucket}/{PREFIX}",
            # boto3 (>= 1.34) reads a service's endpoint from AWS_ENDPOINT_URL_<SERVICE>: only S3
            # goes to the embedded server, any other AWS service keeps its real endpoint.
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection, separators=(",", ":")),
        }
