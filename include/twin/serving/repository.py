"""The Triton model repository `TRITON_MODEL_REPOSITORY` (a folder or an S3 prefix, see
`twin.store.model_repository`), built from registered versions.

Layout (Triton version numbers are the MLflow version numbers):

    served.json                      {"versions": [...]}: what twin_llm's config lists
    twin_llm/config.pbtxt            batched Python backend, version_policy = served versions
    twin_llm/<v>/model.py            copy of twin/serving/templates/twin_llm.py
    twin_llm/<v>/hf/                 merged weights + tokenizer (safetensors)
    twin_llm/<v>/version.json        source, run id, tokenizer fingerprint
    twin_llm/<v>/__pycache__         an empty file: no bytecode written here (see below)
    twin_llm_stream/...              the decoupled variant; <v>/hf links to twin_llm/<v>/hf
                                     (a copy, server-side, in an S3 repository)
    twin_rag/config.pbtxt, twin_rag/1/model.py, twin_rag/1/settings.json (mode 0600)
    twin_rag/routing.json            {"champion": v, "shadow": v | null, "shadow_share": 0.1}

Functions for the deployment stage: `materialise_version`, `load_versions`, `unload_version`,
`set_default_version`, `set_shadow`, `read_routing`. Triton runs with explicit model control:
nothing serves until `load_versions` / `load_rag` asks for it.

`served.json` lies at the repository's top, outside every model's folder: Triton reloads every
version of a model when a file of the model's own folder (other than its config and its
versions' folders) changes, so a record kept in `twin_llm/` reloaded the champion each time a
challenger was loaded or unloaded beside it. Triton ignores files at the top of a repository.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from twin.domain.devices import DevicePolicy, detect
from twin.serving.backend_names import llm_tensors
from twin.serving.configs import (
    LLM_MODEL,
    RAG_MODEL,
    STREAM_MODEL,
    llm_config,
    rag_config,
    stream_config,
)
from twin.serving.sources import SourceRecord, copy_local, fetch_registered
from twin.settings import Settings
from twin.store.model_repository import RepositoryStore, repository_store

TEMPLATES = Path(__file__).parent / "templates"
ROUTING_FILE = "routing.json"
SERVED_FILE = "served.json"
# where an earlier layout kept it (read when the top-level record is missing)
LEGACY_SERVED_FILE = f"{LLM_MODEL}/{SERVED_FILE}"
VERSION_FILE = "version.json"
CONFIG_FILE = "config.pbtxt"
# What a tokenizer loads from a Hugging Face folder (twin_rag and shadow replay build prompts)
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
# Settings fields twin_rag needs inside the Triton stub (written next to its model.py).
RAG_SETTINGS_FIELDS = {
    "home",
    "author",
    "warehouse_dsn",
    "triton_http_url",
    "triton_grpc_url",
    "triton_model_repository",
    "embedding_model",
    "embedding_model_name",
    "service_timeout_s",
} | {name for name in Settings.model_fields if name.startswith("serving_")}


class RepositoryError(RuntimeError):
    """The model repository cannot be built or a model cannot be loaded."""


def repository_path(settings: Settings) -> Path:
    """`TRITON_MODEL_REPOSITORY` when it is a folder on this machine (created when missing);
    for work only a folder repository supports (TensorRT-LLM engines are built into one)."""
    root = repository_store(settings).local_root()
    if root is None:
        raise RepositoryError(
            f"TRITON_MODEL_REPOSITORY is {settings.triton_model_repository}: this needs a folder "
            "repository on Triton's disk"
        )
    return root


def materialise_version(
    settings: Settings, model_version: int, *, source_dir: Path | None = None
) -> str:
    """Write `twin_llm/<model_version>/` (weights, tokenizer, fingerprint, model.py) and its
    streaming twin, from MLflow's `models:/<registered_model>/<model_version>` (or `source_dir`, a
    local Hugging Face folder). Idempotent: an existing version is kept as is (only its model.py
    is refreshed) unless `source_dir` names a different source. Does not load anything;
    returns the version's path in the repository."""
    if int(model_version) < 1:
        raise RepositoryError(f"model_version must be a positive integer, not {model_version!r}")
    version = int(model_version)
    store = repository_store(settings)
    target = f"{LLM_MODEL}/{version}"
    wanted = str(source_dir) if source_dir else f"models:/{settings.registered_model}/{version}"
    text = store.read_text(f"{target}/{VERSION_FILE}")
    record = json.loads(text) if text else {}
    recorded = record.get("source")
    foreign = (
        source_dir is None
        and recorded is not None
        and record.get("registered_model") != settings.registered_model
    )
    if foreign and _is_served(settings, version):
        raise RepositoryError(
            f"twin_llm version {version} in {store.url} comes from "
            f"{record.get('registered_model')}, not {settings.registered_model}, and is loaded: "
            "one repository serves one registered model (unload it first)"
        )
    if recorded is not None and not foreign and (source_dir is None or recorded == wanted):
        _install_templates(store, version)
        return target
    staging = store.staging()
    try:
        if source_dir:
            record = copy_local(
                Path(source_dir), version, staging / "hf", settings.registered_model
            )
        else:
            record = fetch_registered(settings, version, staging / "hf")
        (staging / VERSION_FILE).write_text(record.to_json())
        store.put_tree(staging, target, last=VERSION_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _install_templates(store, version)
    return target


def _is_served(settings: Settings, version: int) -> bool:
    """Whether Triton has `twin_llm` version `version` loaded (unknown counts as loaded)."""
    from twin.serving.client import http_client

    try:
        return bool(http_client(settings).is_model_ready(LLM_MODEL, str(version)))
    except Exception:
        return True


def _install_templates(store: RepositoryStore, version: int) -> None:
    llm, stream = f"{LLM_MODEL}/{version}", f"{STREAM_MODEL}/{version}"
    _put_template(store, f"{llm}/model.py", "twin_llm.py")
    _put_template(store, f"{stream}/model.py", "twin_llm_stream.py")
    record = store.read_text(f"{llm}/{VERSION_FILE}") or ""
    if store.read_text(f"{stream}/{VERSION_FILE}") != record:
        store.write_text(f"{stream}/{VERSION_FILE}", record)
    store.mirror_tree(f"{llm}/hf", f"{stream}/hf")
    for folder in (llm, stream):
        _no_bytecode_folder(store, folder)


def _no_bytecode_folder(store: RepositoryStore, folder: str) -> None:
    """A file named `__pycache__` in a version's folder, where Python would make the folder of
    model.py's bytecode: Triton's stub imports model.py with bytecode writing on (whatever the
    environment says), the folder it then writes changes the version, and Triton takes a changed
    version for a new one: the next load of the model (a challenger beside it) would load the
    served version's weights a second time. Python skips the write when the folder cannot be
    made. An S3 repository needs none: Triton imports from a local copy of it."""
    root = store.local_root()
    if root is None:
        return
    cache = root / folder / "__pycache__"
    if cache.is_dir():  # written by a load before this rule
        shutil.rmtree(cache)
    if not cache.exists():
        cache.write_text("")


def _put_template(store: RepositoryStore, path: str, template: str) -> None:
    text = (TEMPLATES / template).read_text()
    if store.read_text(path) != text:
        store.write_text(path, text)


def version_record(settings: Settings, version: int) -> SourceRecord:
    """The `version.json` of a materialised version."""
    store = repository_store(settings)
    text = store.read_text(f"{LLM_MODEL}/{version}/{VERSION_FILE}")
    if text is None:
        raise RepositoryError(
            f"twin_llm version {version} is not materialised in {store.url} "
            f"({LLM_MODEL}/{version}/{VERSION_FILE} missing)"
        )
    return SourceRecord(**json.loads(text))


def tokenizer_folder(settings: Settings, version: int, cache: Path) -> Path:
    """A local folder with version `version`'s tokenizer files: the repository's own folder, or
    a copy under `cache` when the repository is on S3."""
    path = f"{LLM_MODEL}/{version}/hf"
    return repository_store(settings).fetch_tree(path, cache / str(version), TOKENIZER_FILES)


def served_versions(settings: Settings) -> list[int]:
    """The versions `twin_llm`'s config lists (empty when none)."""
    store = repository_store(settings)
    text = store.read_text(SERVED_FILE)
    if text is None:
        text = store.read_text(LEGACY_SERVED_FILE)
    return json.loads(text)["versions"] if text else []


def write_llm_configs(
    settings: Settings, versions: Iterable[int], policy: DevicePolicy | None = None
) -> list[int]:
    """Point `twin_llm` and `twin_llm_stream` at exactly `versions` (each must be materialised),
    on the device policy given or this host's (`twin.domain.devices.detect`)."""
    store = repository_store(settings)
    policy = policy or detect()
    chosen = sorted({int(v) for v in versions})
    for v in chosen:
        version_record(settings, v)
    if chosen:
        store.write_text(f"{LLM_MODEL}/{CONFIG_FILE}", llm_config(settings, chosen, policy=policy))
        store.write_text(
            f"{STREAM_MODEL}/{CONFIG_FILE}", stream_config(settings, chosen, policy=policy)
        )
    store.write_text(SERVED_FILE, json.dumps({"versions": chosen}))
    return chosen


def _client(settings: Settings):
    from twin.serving.client import http_client

    return http_client(settings, timeout_s=settings.serving_request_timeout_s)


def _load(settings: Settings, name: str) -> None:
    from tritonclient.utils import InferenceServerException

    client = _client(settings)
    try:
        client.load_model(name)
    except InferenceServerException as exc:
        raise RepositoryError(f"Triton refused to load {name}: {exc.message()}") from None
    finally:
        client.close()


def load_versions(settings: Settings, versions: Iterable[int], *, stream: bool = True) -> list[int]:
    """Serve `versions` in addition to those already served; each is materialised first when
    needed (twin_rag reads its tokenizer there). The Python backend loads them as versions of
    `twin_llm` (and `twin_llm_stream`); TensorRT-LLM loads each version's own pipeline, which must
    be in the repository (`twin serve trtllm`). Returns the served set. Raises `RepositoryError`
    with Triton's message when a version fails to load (e.g. a tokenizer fingerprint mismatch)."""
    wanted = [int(v) for v in versions]
    for v in wanted:
        materialise_version(settings, v)
    served = write_llm_configs(settings, [*served_versions(settings), *wanted])
    if llm_tensors(settings.serving_llm_backend).versioned:
        _load(settings, LLM_MODEL)
        if stream:
            _load(settings, STREAM_MODEL)
    else:
        for v in wanted:
            for name in _pipeline(settings, v):
                _load(settings, name)
    return served


def _pipeline(settings: Settings, version: int) -> list[str]:
    """Version `version`'s TensorRT-LLM models in the repository, in load order."""
    from twin.serving.trtllm import installed_pipeline

    models = installed_pipeline(settings, version)
    if not models:
        raise RepositoryError(
            f"version {version} has no TensorRT-LLM pipeline in "
            f"{repository_store(settings).url}: run `twin serve trtllm --version {version}` "
            "and build its engine on the GPU host (`--stand-in` on a machine without one)"
        )
    return models


def unload_version(settings: Settings, version: int) -> list[int]:
    """Stop serving one version (its files stay); the last one unloads the models. Returns the
    served set. The champion cannot be unloaded while twin_rag routes to it."""
    routing = read_routing(settings)
    if routing.get("champion") == int(version):
        raise RepositoryError(
            f"version {version} is the champion twin_rag calls: set another default first"
        )
    remaining = [v for v in served_versions(settings) if v != int(version)]
    write_llm_configs(settings, remaining)
    client = _client(settings)
    try:
        if llm_tensors(settings.serving_llm_backend).versioned:
            for name in (LLM_MODEL, STREAM_MODEL):
                if remaining:
                    if client.is_model_ready(name):
                        client.load_model(name)
                else:
                    client.unload_model(name)
        else:
            from twin.serving.trtllm import installed_pipeline

            for name in reversed(installed_pipeline(settings, version)):
                client.unload_model(name)
    finally:
        client.close()
    if routing.get("shadow") == int(version):
        set_shadow(settings, None)
    return remaining


def read_routing(settings: Settings) -> dict[str, Any]:
    """twin_rag's routing: champion version, shadow version (or None) and the mirrored share."""
    text = repository_store(settings).read_text(f"{RAG_MODEL}/{ROUTING_FILE}")
    if text is None:
        return {"champion": None, "shadow": None, "shadow_share": settings.serving_shadow_share}
    return json.loads(text)


def _write_routing(settings: Settings, routing: dict[str, Any]) -> None:
    store = repository_store(settings)
    store.write_text(f"{RAG_MODEL}/{ROUTING_FILE}", json.dumps(routing, indent=2))


def set_default_version(settings: Settings, version: int) -> dict[str, Any]:
    """Make `version` the champion twin_rag calls when a request names none. twin_rag re-reads
    `twin_rag/routing.json` on every request (by modification time): no reload needed. The
    version must be served (see `load_versions`)."""
    if int(version) not in served_versions(settings):
        raise RepositoryError(f"twin_llm version {version} is not served: load it first")
    routing = read_routing(settings) | {"champion": int(version)}
    _write_routing(settings, routing)
    return routing


def set_shadow(settings: Settings, version: int | None, share: float | None = None) -> dict:
    """Mirror a share (0..1) of twin_rag's requests to `version` off the request path (None:
    stop). The client always gets the champion's answer; each mirrored pair is written to
    `serving.shadow_comparisons`."""
    share = settings.serving_shadow_share if share is None else float(share)
    if not 0.0 <= share <= 1.0:
        raise RepositoryError(f"shadow share must be in [0, 1], not {share}")
    if version is not None and int(version) not in served_versions(settings):
        raise RepositoryError(f"twin_llm version {version} is not served: load it first")
    routing = read_routing(settings) | {
        "shadow": None if version is None else int(version),
        "shadow_share": share,
    }
    _write_routing(settings, routing)
    return routing


def grant_rag_login(settings: Settings) -> str:
    """Grant twin_rag's login, the role of `serving_dsn`, what serving needs in the database
    `warehouse_dsn` names (`grant_serving_access`; a scratch warehouse is served by the same role)
    and return the DSN twin_rag connects with: that role on that database. Without
    `serving_dsn`, the warehouse DSN itself."""
    warehouse = settings.require("warehouse_dsn")
    if not settings.serving_dsn:
        return warehouse
    from twin.store.serving import grant_serving_access
    from twin.store.warehouse import warehouse_connection

    serving, target = urlsplit(settings.serving_dsn), urlsplit(warehouse)
    if not serving.username:
        raise RepositoryError("SERVING_DSN names no role: postgresql://<role>:<password>@…")
    with warehouse_connection(settings, autocommit=True) as conn:
        grant_serving_access(conn, unquote(serving.username))
    credentials = serving.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{target.netloc.rpartition('@')[2]}"
    return urlunsplit(target._replace(netloc=netloc))


def install_rag(settings: Settings) -> str:
    """Write twin_rag's config, model.py and the settings it runs with (mode 0600: it holds the
    warehouse DSN). Re-run after changing serving settings; returns the model's path in the
    repository."""
    store = repository_store(settings)
    store.write_text(f"{RAG_MODEL}/{CONFIG_FILE}", rag_config(settings))
    _put_template(store, f"{RAG_MODEL}/1/model.py", "twin_rag.py")
    values = settings.model_dump(mode="json", include=RAG_SETTINGS_FIELDS)
    # the Triton process holds the serving role's login, never the platform's
    values["warehouse_dsn"], values["serving_dsn"] = grant_rag_login(settings), None
    store.write_text(f"{RAG_MODEL}/1/settings.json", json.dumps(values, indent=2), private=True)
    if not store.exists(f"{RAG_MODEL}/{ROUTING_FILE}"):
        _write_routing(settings, read_routing(settings))
    return RAG_MODEL


def load_rag(settings: Settings) -> None:
    """Install and (re)load twin_rag; a champion must be set (see `set_default_version`)."""
    if read_routing(settings).get("champion") is None:
        served = served_versions(settings)
        if not served:
            raise RepositoryError("no twin_llm version is served: run load_versions first")
        set_default_version(settings, max(served))
    install_rag(settings)
    _load(settings, RAG_MODEL)


def ensure_rag_without_champion(settings: Settings) -> None:
    """Serve twin_rag (install and load it when Triton does not) without choosing a champion:
    until one is set, a request must name its `model_version` (a first deployment asks its
    version this way before promoting it)."""
    client = _client(settings)
    try:
        ready = client.is_model_ready(RAG_MODEL)
    finally:
        client.close()
    if not ready:
        install_rag(settings)
        _load(settings, RAG_MODEL)
