"""The embedded S3 server's share of stack.env and of Airflow's connections (no server needed)."""

import json
from pathlib import Path

from twin.stack.airflow_objects import render_objects
from twin.stack.base import StackContext
from twin.stack.manager import CORE_SERVICES, OPTIONAL_SERVICES, Stack
from twin.stack.s3 import S3Service


def test_s3_endpoints_point_the_object_store_and_aws_default_at_the_server(
    tmp_path: Path,
) -> None:
    service = S3Service(StackContext(home=tmp_path, ports={"s3": 9555}))
    endpoints = service.endpoints()

    assert endpoints["OBJECT_STORE_URL"] == "s3://twinops/objects"
    assert endpoints["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9555"
    key, secret = endpoints["AWS_ACCESS_KEY_ID"], endpoints["AWS_SECRET_ACCESS_KEY"]
    assert key.startswith("AKIA") and len(key) == 20 and len(secret) >= 30
    # generated once: a second look (or a restart) reads the same secrets
    assert S3Service(StackContext(home=tmp_path, ports={"s3": 9555})).endpoints() == endpoints

    objects = render_objects(endpoints, environ={})
    aws = next(c for c in objects.connections if c["conn_id"] == "aws_default")
    assert (aws["conn_type"], aws["login"], aws["password"]) == ("aws", key, secret)
    assert aws["extra"] == {"endpoint_url": "http://127.0.0.1:9555", "region_name": "eu-north-1"}
    assert objects.variables["twin_object_store_url"] == "s3://twinops/objects"
    assert secret not in json.dumps(objects.redacted())


def test_s3_is_optional_and_the_default_stack_keeps_the_local_folder(tmp_path: Path) -> None:
    assert "s3" in OPTIONAL_SERVICES and "s3" not in CORE_SERVICES
    stack = Stack(tmp_path, CORE_SERVICES)
    assert stack.endpoints()["OBJECT_STORE_URL"] == (tmp_path.resolve() / "objects").as_uri()
