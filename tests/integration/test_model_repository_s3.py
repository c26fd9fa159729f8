"""The Triton model repository on S3: both repository backends keep one contract, and Triton,
started by the stack on the S3 server's `s3://<bucket>/triton` prefix, serves a version the
deployment stage wrote there through boto3, with nothing of it in Triton's own folder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from twin.serving.repository import (
    TOKENIZER_FILES,
    load_versions,
    materialise_version,
    read_routing,
    served_versions,
    set_default_version,
    tokenizer_folder,
    unload_version,
    version_record,
)
from twin.settings import Settings
from twin.stack import Stack
from twin.stack.s3 import BUCKET, S3Service
from twin.stack.servers import TritonService
from twin.store.model_repository import (
    ROOT_MARKER,
    FolderRepository,
    RepositoryStore,
    S3Repository,
    repository_store,
    triton_s3_url,
)

pytestmark = pytest.mark.integration

BACKENDS = ("folder", "s3")


@pytest.fixture
def make_repository(s3_stack: Stack, tmp_path: Path) -> Callable[[str], RepositoryStore]:
    def make(backend: str) -> RepositoryStore:
        if backend == "folder":
            return FolderRepository(tmp_path / f"models-{uuid.uuid4().hex[:8]}")
        client = s3_stack.services["s3"].client()
        return S3Repository(BUCKET, f"test-models-{uuid.uuid4().hex[:8]}", client=client)

    return make


def _hf_folder(root: Path) -> Path:
    folder = root / "hf"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 1024)
    (folder / "tokenizer.json").write_text('{"t": 1}')
    (folder / "sub" / "note.txt").write_text("n")
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_repository_backends_keep_one_contract(make_repository, backend, tmp_path) -> None:
    store = make_repository(backend)
    assert store.read_text("twin_rag/routing.json") is None
    assert store.stamp("twin_rag/routing.json") is None

    store.write_text("twin_rag/routing.json", '{"champion": 1}')
    first = store.stamp("twin_rag/routing.json")
    assert store.read_text("twin_rag/routing.json") == '{"champion": 1}'
    store.write_text("twin_rag/routing.json", '{"champion": 2}')
    assert store.stamp("twin_rag/routing.json") not in (None, first)  # a change is seen
    assert store.exists("twin_rag/routing.json") and not store.exists("twin_rag")

    staged = _hf_folder(store.staging())
    (staged / "version.json").write_text("{}")
    store.put_tree(staged, "twin_llm/3", last="version.json")
    assert store.exists("twin_llm/3/hf/sub/note.txt") and store.exists("twin_llm/3/version.json")
    again = store.staging()  # a new tree replaces the old one entirely
    (again / "hf").mkdir()
    (again / "hf" / "tokenizer.json").write_text('{"t": 2}')
    store.put_tree(again, "twin_llm/3")
    assert not store.exists("twin_llm/3/hf/sub/note.txt")
    assert store.read_text("twin_llm/3/hf/tokenizer.json") == '{"t": 2}'

    store.mirror_tree("twin_llm/3/hf", "twin_llm_stream/3/hf")
    store.mirror_tree("twin_llm/3/hf", "twin_llm_stream/3/hf")  # idempotent
    assert store.read_text("twin_llm_stream/3/hf/tokenizer.json") == '{"t": 2}'

    local = store.fetch_tree("twin_llm/3/hf", tmp_path / backend, ("tokenizer.json",))
    assert json.loads((local / "tokenizer.json").read_text()) == {"t": 2}
    assert not store.fetch_tree("twin_llm/9/hf", tmp_path / f"{backend}-9").exists()

    with pytest.raises(ValueError, match="invalid object key"):
        store.read_text("../etc/passwd")


def test_triton_s3_url_names_the_endpoint() -> None:
    assert triton_s3_url("s3://twinops/triton", "http://127.0.0.1:9000") == (
        "s3://http://127.0.0.1:9000/twinops/triton"
    )
    assert triton_s3_url("s3://bucket/a/b", None) == "s3://bucket/a/b"


@pytest.fixture(scope="module")
def s3_settings(s3_stack: Stack) -> Iterator[Settings]:
    """Settings for the S3 stack's Triton (its repository is the bucket's `triton/` prefix),
    reaching S3 as the platform does outside Airflow: boto3's environment."""
    endpoints = s3_stack.endpoints()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in endpoints.items():
            if key.startswith("AWS_"):
                patch.setenv(key, value)
        patch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
        yield Settings(
            TWIN_HOME=s3_stack.home,
            triton_http_url=endpoints["TRITON_HTTP_URL"],
            triton_grpc_url=endpoints["TRITON_GRPC_URL"],
            triton_model_repository=endpoints["TRITON_MODEL_REPOSITORY"],
            triton_repository_key=endpoints["TRITON_REPOSITORY_KEY"],
            registered_model=f"twin-llm-s3-{uuid.uuid4().hex[:6]}",
        )


def test_triton_serves_a_version_written_to_s3(s3_stack, s3_settings, tiny_model_dir) -> None:
    from twin.serving.client import generate_text

    triton = s3_stack.services["triton"]
    s3 = s3_stack.services["s3"]
    assert isinstance(triton, TritonService) and isinstance(s3, S3Service)
    assert s3_settings.triton_model_repository == f"s3://{BUCKET}/triton"
    store = repository_store(s3_settings)
    assert isinstance(store, S3Repository) and store.exists(ROOT_MARKER)

    materialise_version(s3_settings, 1, source_dir=tiny_model_dir)
    assert load_versions(s3_settings, [1], stream=False) == [1]
    assert version_record(s3_settings, 1).tokenizer_fingerprint
    answer = generate_text(s3_settings, "Hello", max_tokens=4, version=1)
    assert answer["completion_tokens"] == 4 and answer["text"]

    # Triton read the version from the bucket: its own folder holds no model
    assert not list(triton.repository.iterdir())
    keys = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="triton/twin_llm/1/")
    names = {obj["Key"].rpartition("/")[2] for obj in keys.get("Contents", [])}
    assert {"model.py", "version.json", "model.safetensors", "tokenizer.json"} <= names

    # routing and tokenizers are read back from S3 by any process (twin_rag, shadow replay)
    assert set_default_version(s3_settings, 1)["champion"] == 1
    assert read_routing(s3_settings)["champion"] == 1
    local = tokenizer_folder(s3_settings, 1, s3_stack.home / "tokenizers")
    assert {p.name for p in local.iterdir()} <= set(TOKENIZER_FILES)
    assert (local / "tokenizer.json").exists()

    assert served_versions(s3_settings) == [1]
    store.write_text(
        "twin_rag/routing.json", json.dumps(read_routing(s3_settings) | {"champion": None})
    )
    assert unload_version(s3_settings, 1) == []
