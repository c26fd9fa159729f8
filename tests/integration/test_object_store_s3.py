"""The object store's S3 path against the embedded S3 server (moto), beside the local folder: both
backends keep the same contract, and `object_store(settings)` reaches the server the way the
platform does (the `aws_default` connection in Airflow, boto3's environment outside it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import PROJECT_ROOT, is_stack_key
from twin.stack import Stack
from twin.stack.s3 import BUCKET, S3Service
from twin.store.object_store import LocalObjectStore, ObjectStore, S3ObjectStore

pytestmark = pytest.mark.integration

BACKENDS = ("local", "s3")


def s3_service(stack: Stack) -> S3Service:
    service = stack.services["s3"]
    assert isinstance(service, S3Service)
    return service


@pytest.fixture
def make_store(s3_stack: Stack, tmp_path: Path) -> Callable[[str], ObjectStore]:
    """An empty store of either backend: a fresh folder, or a fresh prefix in the bucket."""

    def make(backend: str) -> ObjectStore:
        if backend == "local":
            return LocalObjectStore(tmp_path / f"objects-{uuid.uuid4().hex[:8]}")
        client = s3_service(s3_stack).client()
        return S3ObjectStore(BUCKET, f"test-{uuid.uuid4().hex[:8]}", client=client)

    return make


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_round_trips_lists_and_deletes(make_store, backend: str) -> None:
    store = make_store(backend)
    url = store.put("raw/medium/a.html", b"<html>a</html>", "text/html")
    store.put("raw/medium/b.html", b"b")
    store.put("reports/x.json", b"{}")

    assert url.startswith(store.url + "/") and url.endswith("raw/medium/a.html")
    assert store.get("raw/medium/a.html") == b"<html>a</html>"
    assert store.list("raw/") == ["raw/medium/a.html", "raw/medium/b.html"]
    assert store.list() == ["raw/medium/a.html", "raw/medium/b.html", "reports/x.json"]
    assert store.exists("reports/x.json")
    store.delete("raw/medium/a.html")
    store.delete("raw/medium/a.html")  # deleting what is gone is no error
    assert not store.exists("raw/medium/a.html")
    with pytest.raises(KeyError):
        store.get("raw/medium/a.html")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b"])
def test_keys_cannot_escape_the_store(make_store, backend: str, key: str) -> None:
    store = make_store(backend)
    for action in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.exists(key)):
        with pytest.raises(ValueError, match="invalid object key"):
            action()


def observe(store: ObjectStore) -> list[object]:
    """What a caller sees over one sequence of calls: every answer, and every KeyError."""
    seen: list[object] = []

    def get(key: str) -> object:
        try:
            return store.get(key)
        except KeyError as err:
            return ("KeyError", err.args)

    store.put("raw/a.html", b"first")
    store.put("raw/a.html", b"second")  # an overwrite replaces
    store.put("raw/ab.html", b"")  # empty objects exist
    store.put("raw/sub/c.txt", "ünïcode".encode())
    store.put("reports/r.json", b'{"ok": true}', "application/json")
    seen += [store.list(), store.list("raw/"), store.list("raw/a"), store.list("none/")]
    # a key is one object: neither a prefix of another key nor a "folder"
    seen += [store.exists(k) for k in ("raw/a.html", "raw/a", "raw", "raw/sub", "raw/x")]
    seen += [get(k) for k in ("raw/a.html", "raw/ab.html", "raw/sub/c.txt", "raw/a", "raw/sub")]
    store.delete("raw/a.html")
    store.delete("never/was")
    seen += [store.list("raw/"), store.exists("raw/a.html"), get("raw/a.html")]
    return seen


def test_local_and_s3_stores_behave_the_same(make_store) -> None:
    local, s3 = observe(make_store("local")), observe(make_store("s3"))
    assert s3 == local
    assert local[1] == ["raw/a.html", "raw/ab.html", "raw/sub/c.txt"]


# Run in a child interpreter: `s3_client()` imports Airflow, which reads its configuration once,
# when first imported, and this session's Airflow must be configured by `stack_settings`.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from twin.settings import Settings, load_settings
    from twin.store.object_store import object_store

    home, key = Path(sys.argv[1]), sys.argv[2]
    # inside Airflow: only the aws_default connection (its extra's endpoint_url) names the server
    assert not [k for k in os.environ if k.startswith("AWS_")]
    with_connection = object_store(Settings(_env_file=home / "stack.env", TWIN_HOME=home))
    with_connection.put(key, b"through the connection")
    # outside Airflow: the AWS_* entries of stack.env, which load_settings exports for boto3
    del os.environ["AIRFLOW_CONN_AWS_DEFAULT"]
    with_environment = object_store(load_settings(home))
    print(json.dumps({
        "backend": type(with_environment).__name__,
        "url": with_environment.url,
        "read": with_environment.get(key).decode(),
        "exported": sorted(k for k in os.environ if k.startswith("AWS_")),
    }))
    """
)


def test_object_store_from_settings_reaches_the_server(s3_stack: Stack, tmp_path: Path) -> None:
    service = s3_service(s3_stack)
    endpoints = s3_stack.endpoints()
    env = {k: v for k, v in os.environ.items() if not is_stack_key(k) and not k.startswith("AWS_")}
    env |= {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW_CONN_AWS_DEFAULT": endpoints["AIRFLOW_CONN_AWS_DEFAULT"],
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "include"), str(PROJECT_ROOT)]),
    }
    key = f"settings/{uuid.uuid4().hex}.txt"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(s3_stack.home), key],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert endpoints["OBJECT_STORE_URL"] == f"s3://{BUCKET}/objects"
    assert seen["backend"] == "S3ObjectStore" and seen["url"] == endpoints["OBJECT_STORE_URL"]
    assert seen["read"] == "through the connection"
    assert seen["exported"] == [
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SECRET_ACCESS_KEY",
    ]
    # the object is in the bucket of the stack's server, under the store's prefix
    body = service.client().get_object(Bucket=BUCKET, Key=f"objects/{key}")["Body"].read()
    assert body == b"through the connection"
    # and neither process logged the secret key
    secret = service.secret_access_key
    assert secret not in result.stdout + result.stderr
    assert secret not in service.process.log_path.read_text()


def test_s3_server_keeps_its_secrets_private(s3_stack: Stack) -> None:
    service = s3_service(s3_stack)
    proc = service.process.running()
    assert proc is not None
    assert service.secret_access_key not in " ".join(proc.cmdline())
    secrets = [s3_stack.home / "secrets" / n for n in ("s3_access_key_id", "s3_secret_access_key")]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in secrets)
    assert s3_stack.env_path.stat().st_mode & 0o777 == 0o600
    # bound to loopback only
    ports = {c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"}
    assert {addr.ip for addr in ports} == {"127.0.0.1"}


def test_up_again_keeps_the_bucket_and_its_objects(s3_stack: Stack) -> None:
    store = S3ObjectStore(
        BUCKET, f"test-{uuid.uuid4().hex[:8]}", client=s3_service(s3_stack).client()
    )
    store.put("kept.txt", b"still here")

    again = s3_stack.up()

    assert again.started == [] and again.reused == ["s3", "triton"] and again.notes == ()
    assert store.get("kept.txt") == b"still here"
    status = next(s for s in again.statuses if s.name == "s3")
    assert status.healthy and "in memory" in status.detail
