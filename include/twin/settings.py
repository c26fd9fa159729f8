"""Every endpoint and knob of TwinOps, in one pydantic-settings object.

Values come, in order of precedence, from environment variables, then `.twin/stack.env` (written by
`twin stack up`), then the Airflow connection named in DESIGN.md (when running inside Airflow),
then defaults. Production sets the same variables or the same Airflow connections.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BeforeValidator, Field, StringConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The dbt project: the warehouse runs it, the quality stage writes its generated PII macros.
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"

# The header that carries the platform's key to Triton's model-repository API (load, unload).
TRITON_REPOSITORY_KEY_HEADER = "twin-repository-key"

# `scheme://user:password@` in an endpoint URL: the password is left out of a repr
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")

# Airflow connection ids (DESIGN.md) and the settings field each one backs.
CONNECTION_IDS: dict[str, str] = {
    "mongo_uri": "mongo_default",
    "warehouse_dsn": "warehouse_postgres",
    "mlflow_tracking_uri": "mlflow_default",
    "triton_http_url": "triton_default",
}


def default_home() -> Path:
    """The embedded stack's state folder: `$TWIN_HOME`, else `<project>/.twin`."""
    return Path(os.environ.get("TWIN_HOME") or PROJECT_ROOT / ".twin").resolve()


# The arithmetic of the embedding model (twin.store.embeddings): "auto" picks bf16 where the CPU
# multiplies it in hardware.
EmbeddingPrecision = Literal["auto", "fp32", "bf16"]
DEFAULT_INDEX_BUILD_MEMORY_MB = 4096


def _folder_or_s3(value: Any) -> Any:
    """An `s3://` URL stays a string (a Path would fold its `//`); anything else is a folder."""
    if value is None or (isinstance(value, str) and value.startswith("s3://")):
        return value
    return Path(value)


class Settings(BaseSettings):
    """Endpoints of every service and the knobs of every stage."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=default_home, validation_alias="TWIN_HOME")
    mongo_uri: str | None = None
    mongo_database: str = "twin"
    warehouse_dsn: str | None = None
    # twin_rag's own least-privileged warehouse login (reads the chunk store, writes the serving
    # logs), on the database warehouse_dsn names. Unset: twin_rag connects as warehouse_dsn.
    serving_dsn: str | None = None
    mlflow_tracking_uri: str | None = None
    # MLflow basic auth (the embedded stack's platform user); exported for MLflow's clients
    mlflow_tracking_username: str | None = None
    mlflow_tracking_password: str | None = Field(default=None, repr=False)
    triton_http_url: str | None = None
    triton_grpc_url: str | None = None
    # a folder Triton reads, or `s3://bucket/prefix` (Triton's S3 model repository)
    triton_model_repository: Annotated[Path | str | None, BeforeValidator(_folder_or_s3)] = None
    # sent as TRITON_REPOSITORY_KEY_HEADER: Triton's model-repository API (load, unload) wants it
    triton_repository_key: str | None = Field(default=None, repr=False)
    object_store_url: str | None = None
    # An S3 endpoint other than AWS's (the embedded stack's S3 server) and its credentials;
    # exported for boto3, which reads them from the process environment only
    aws_endpoint_url_s3: str | None = None
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_default_region: str | None = None
    airflow_home: Path | None = None
    # the author whose twin the platform builds (the demo sets the bundled sample author)
    author: str = Field(default="Ada Lindqvist", min_length=1, validation_alias="TWIN_AUTHOR")
    mlflow_experiment: str = "twin-training"
    registered_model: str = "twin-llm"
    service_timeout_s: float = Field(default=5.0, gt=0)
    # features: a model directory or package name (default: the packaged all-MiniLM-L6-v2)
    embedding_model: str | None = Field(default=None, validation_alias="TWIN_EMBEDDING_MODEL")
    embedding_model_name: str | None = Field(
        default=None, validation_alias="TWIN_EMBEDDING_MODEL_NAME"
    )
    # "auto": bf16 matmuls on a CPU that has them in hardware (about 3x faster, cosine to fp32
    # above 0.9999), fp32 elsewhere; "fp32" or "bf16" force one
    embedding_precision: EmbeddingPrecision = Field(
        default="auto", validation_alias="TWIN_EMBEDDING_PRECISION"
    )
    # the most memory (MB) a vector index build may take for its HNSW graph, where the
    # server's maintenance_work_mem is less (twin.store.vectors.hnsw_build_memory_mb)
    index_build_memory_mb: int = Field(
        default=DEFAULT_INDEX_BUILD_MEMORY_MB, ge=64, validation_alias="TWIN_INDEX_BUILD_MEMORY_MB"
    )
    # crawling
    sample_site_url: str | None = None
    # `host:port` pairs only ("127.0.0.1:8000"): a whole host would open its other services too
    crawl_allow_private_hosts: list[
        Annotated[str, StringConstraints(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):\d{1,5}$")]
    ] = Field(default_factory=list)
    crawl_platform_prefixes: dict[str, str] = Field(default_factory=dict)
    crawl_per_host_concurrency: int = Field(default=4, ge=1, le=64)
    crawl_per_host_rate: float = Field(default=10.0, gt=0)
    crawl_max_body_bytes: int = Field(default=5_000_000, gt=0)
    crawl_workers: int = Field(default=8, ge=1, le=64)
    # LinkedIn exports are read from this folder only (default: <home>/uploads)
    crawl_upload_dir: Path | None = Field(default=None, validation_alias="TWIN_CRAWL_UPLOAD_DIR")
    crawl_dns_server: str | None = None  # "address[:port]" asked instead of the system resolver
    crawl_extract_processes: int = Field(default=0, ge=0, le=64)  # 0: per core if >= 4 cores
    crawl_git_timeout_s: float = Field(default=300.0, gt=0)
    crawl_git_max_bytes: int = Field(default=200_000_000, gt=0)
    crawl_git_max_files: int = Field(default=100_000, gt=0)  # files of one checkout
    # datasets (instruction and preference sets)
    generator_url: str | None = Field(default=None, validation_alias="TWIN_GENERATOR_URL")
    generator_model: str = Field(default="default", validation_alias="TWIN_GENERATOR_MODEL")
    # the key: this variable, else the password of the Airflow connection `twin_generator`
    generator_api_key: str | None = Field(default=None, validation_alias="TWIN_GENERATOR_API_KEY")
    generator_batch_size: int = Field(default=8, ge=1, le=256)
    generator_timeout_s: float = Field(default=60.0, gt=0)
    generator_max_retries: int = Field(default=5, ge=0, le=20)
    # torch threads of the local generator (0: torch's default)
    generator_threads: int = Field(
        default=0, ge=0, le=256, validation_alias="TWIN_GENERATOR_THREADS"
    )
    datasets_experiment: str = "twin-datasets"
    datasets_test_share: float = Field(default=0.1, ge=0.0, le=0.5)
    # training (base models are cached here after conversion)
    # the base model of runs whose `base_model` Param is empty (scheduled runs use it)
    training_base_model: str = Field(
        default="smollm2-135m", min_length=1, validation_alias="TWIN_TRAINING_BASE_MODEL"
    )
    model_cache_dir: Path | None = Field(default=None, validation_alias="TWIN_MODEL_CACHE")
    # training runs' working folders (checkpoints, merged weights before registration)
    training_dir: Path | None = Field(default=None, validation_alias="TWIN_TRAINING_DIR")
    # an OpenAI-compatible chat endpoint that judges evaluation answers (optional)
    judge_url: str | None = Field(default=None, validation_alias="TWIN_JUDGE_URL")
    judge_model: str | None = Field(default=None, validation_alias="TWIN_JUDGE_MODEL")
    # evaluation gate a new version must pass to be deployable (tag `evaluation_passed`)
    eval_max_perplexity_ratio: float = Field(default=1.0, gt=0)  # tuned / base held-out ppl
    eval_max_style_drop: float = Field(default=0.1, ge=0, le=2)  # base - tuned style similarity
    # absolute floors of the evaluation gate, whatever any champion does
    eval_max_repeat_rate: float = Field(default=0.05, ge=0, le=1)  # repeated 4-grams per answer
    eval_min_voice_gain: float = Field(default=0.0, ge=0, le=10)  # relative to the base's voice
    # off only for chain tests on tiny config-built models that cannot write: the voice and
    # loop figures are still recorded, the relative checks alone decide
    eval_absolute_floors: bool = True
    # serving (Triton models twin_llm, twin_llm_stream, twin_rag; see twin.serving)
    serving_max_batch_size: int = Field(default=8, ge=1, le=64)
    serving_dynamic_batching: bool = True  # False: each request generated alone
    serving_batch_delay_us: int = Field(default=20_000, ge=0)  # dynamic batcher queue delay
    serving_max_prompt_bytes: int = Field(default=16_384, gt=0)
    serving_max_prompt_tokens: int = Field(default=1536, gt=0)
    serving_max_new_tokens: int = Field(default=512, gt=0)  # max_tokens must be in [1, this]
    serving_default_max_tokens: int = Field(default=96, gt=0)
    serving_max_query_chars: int = Field(default=2000, gt=0)
    # twin_rag's BLS call waits for twin_llm, so its instances bound how many requests reach the
    # LLM's batcher. On 2 cores 4 instances gave 0.38 requests/s at concurrency 4 against 0.24
    # with 2 (benchmarks/serve.py, 64 tokens), but the demo's first deployment (12 questions at
    # concurrency 8) took as long with 4 as with 2: long RAG prompts keep both cores busy
    serving_rag_instances: int = Field(default=2, ge=1, le=16)
    # torch threads of each Triton Python-backend instance (twin_llm, twin_llm_stream, twin_rag);
    # 0: torch's default, one per core, in every instance at once
    serving_cpu_threads: int = Field(default=0, ge=0, le=256)
    serving_rag_k: int = Field(default=5, ge=1, le=20)
    serving_context_tokens: int = Field(default=768, gt=0)  # passages' share of the prompt
    serving_similarity_floor: float = Field(default=0.3, ge=-1.0, le=1.0)
    serving_shadow_share: float = Field(default=0.0, ge=0.0, le=1.0)
    serving_llm_backend: str = Field(default="python", pattern="^(python|tensorrtllm)$")
    serving_request_timeout_s: float = Field(default=120.0, gt=0)
    # generations twin_llm_stream runs at once; a request beyond them is refused as busy
    serving_stream_max_concurrent: int = Field(default=4, ge=1, le=64)
    # days serving.inference_log and serving.shadow_comparisons keep a row (users' questions)
    serving_log_retention_days: int = Field(default=30, ge=1)
    # retrieval: a cross-encoder reranker folder (default: MMR over the embeddings)
    rerank_model_path: Path | None = Field(default=None, validation_alias="TWIN_RERANK_MODEL_PATH")
    # deployment and monitoring (twin.deploy; thresholds are the twin_deploy Params' defaults)
    triton_metrics_url: str | None = None  # Prometheus text, e.g. http://127.0.0.1:8002/metrics
    # promotion needs review=approved (`twin models approve`); off: the checks alone decide
    deploy_require_approval: bool = True
    deploy_min_samples: int = Field(default=40, ge=2)
    deploy_drift_method: str = Field(default="mmd", pattern="^(mmd|classifier)$")
    deploy_mmd_alpha: float = Field(default=0.01, gt=0, lt=1)  # fail when p-value below
    deploy_max_classifier_auc: float = Field(default=0.75, ge=0.5, le=1)
    deploy_ks_alpha: float = Field(default=0.01, gt=0, lt=1)  # answer-length KS test
    deploy_max_style_drop: float = Field(default=0.1, ge=0, le=2)  # vs the champion's similarity
    deploy_max_latency_p95_ratio: float = Field(default=2.0, gt=0)
    # latency fails only when the challenger is also slower pair after pair at this significance
    # (1: the p95 budget alone decides)
    deploy_latency_alpha: float = Field(default=0.05, gt=0, le=1)
    deploy_max_error_rate: float = Field(default=0.02, ge=0, le=1)
    deploy_max_guardrail_rate: float = Field(default=0.05, ge=0, le=1)  # above the champion's
    # absolute floors on a version's own answers, first deployment or not
    deploy_max_empty_rate: float = Field(default=0.1, ge=0, le=1)
    deploy_max_loop_rate: float = Field(default=0.1, ge=0, le=1)  # repeated 4-grams per answer
    deploy_max_wrong_source_rate: float = Field(default=0.5, ge=0, le=1)  # label not in sources
    # evaluation questions a first deployment asks the version through twin_rag
    deploy_first_questions: int = Field(default=12, ge=2, le=500)
    deploy_shadow_timeout_s: float = Field(default=900.0, gt=0)
    # requests a deployment keeps in flight (replayed pairs, first-deployment questions): Triton's
    # dynamic batcher answers concurrent twin_llm requests in one batch
    deploy_concurrency: int = Field(default=8, ge=1, le=64)
    monitor_window_hours: float = Field(default=1.0, gt=0)
    monitor_reference_days: float = Field(default=7.0, gt=0)
    monitor_min_queries: int = Field(default=20, ge=1)
    monitor_max_psi: float = Field(default=0.2, gt=0)  # 0.1-0.2 moderate, above: significant
    monitor_max_latency_p95_ms: float = Field(default=5000.0, gt=0)
    monitor_max_latency_ratio: float = Field(default=2.0, gt=0)  # p95 vs the reference window
    monitor_max_error_rate: float = Field(default=0.02, ge=0, le=1)
    monitor_max_no_context_share: float = Field(default=0.3, ge=0, le=1)
    alert_webhook_url: str | None = Field(default=None, validation_alias="TWIN_ALERT_WEBHOOK_URL")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # a repr ends up in logs and test reports: endpoint URLs without their passwords
        for name, value in super().__repr_args__():
            yield name, _URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value

    def models_dir(self) -> Path:
        """Converted base models, generation caches and compiled ops: `TWIN_MODEL_CACHE`, else
        `<home>/models`. A cache of this machine (its content is derived, by content hash)."""
        return Path(self.model_cache_dir or self.home / "models")

    def training_runs_dir(self) -> Path:
        """Training runs' working folders: `TWIN_TRAINING_DIR`, else `<home>/training`."""
        return Path(self.training_dir or self.home / "training")

    def require(self, field: str) -> str:
        """The value of an endpoint field, or a clear error saying how to provide it."""
        value = getattr(self, field)
        if value is None:
            value = airflow_connection_uri(CONNECTION_IDS.get(field, ""), field)
        if not value:
            env = field.upper()
            conn = CONNECTION_IDS.get(field)
            hint = f" or the Airflow connection '{conn}'" if conn else ""
            raise RuntimeError(
                f"{env} is not set: run `twin stack up` (writes {self.home / 'stack.env'}), "
                f"or set {env}{hint}"
            )
        return str(value)


class SettingsError(ValueError):
    """A setting whose value cannot be used; the message names the variable and the reason."""


def load_settings(home: Path | None = None) -> Settings:
    """Read settings afresh from the environment and the stack's `stack.env`.

    A malformed value raises `SettingsError` naming each bad variable, its value's origin and
    what was expected, never a raw validation dump.
    """
    home = home or default_home()
    env_file = home / "stack.env"
    try:
        settings = Settings(_env_file=env_file if env_file.exists() else None, TWIN_HOME=home)
    except ValidationError as err:
        raise SettingsError(describe_errors(err, env_file)) from None
    export_mlflow_credentials(settings)
    export_aws_settings(settings)
    return settings


def export_mlflow_credentials(settings: Settings) -> None:
    """MLflow's clients read their credentials from the process environment only: put the
    stack's there (as `airflow dags test` after sourcing stack.env has them), never over values
    the environment already sets."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        value = getattr(settings, name.lower())
        if value and not os.environ.get(name):
            os.environ[name] = value


def export_aws_settings(settings: Settings) -> None:
    """boto3 reads its S3 endpoint and credentials from the process environment: put the stack's
    there (the `s3` service's, in stack.env), never over values the environment already sets."""
    names = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    if not settings.aws_endpoint_url_s3 or any(os.environ.get(name) for name in names):
        return  # real AWS, or an environment that names its own S3: keep what it says
    for name in (*names, "AWS_DEFAULT_REGION"):
        value = getattr(settings, name.lower())
        if value and not os.environ.get(name):
            os.environ[name] = value


def describe_errors(err: ValidationError, env_file: Path) -> str:
    """One line per bad setting: `NAME: reason (got 'value')`, with where the value came from."""
    lines = []
    for item in err.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info and isinstance(info.validation_alias, str) else None
        name = alias or field.upper()
        origin = "environment" if name in os.environ else f"{env_file}"
        value = str(item.get("input"))[:80]
        lines.append(f"{name}: {item['msg']} (got {value!r}, from the {origin})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def airflow_connection_uri(conn_id: str, field: str) -> str | None:
    """The URI of an Airflow connection, when this runs inside Airflow and the connection exists."""
    if not conn_id or "airflow" not in sys.modules:
        return None
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception:  # not in a task, or no such connection: the caller reports it
        return None
    return connection_to_endpoint(
        field,
        conn.conn_type,
        conn.host,
        conn.port,
        conn.login,
        conn.password,
        conn.schema,
        conn.extra_dejson,
    )


def connection_to_endpoint(
    field: str,
    conn_type: str | None,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    extra: dict,
) -> str:
    """Turn an Airflow connection's parts into the endpoint URL a settings field holds."""
    auth = ""
    if login:
        auth = quote(login, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
    netloc = f"{auth}{host or ''}" + (f":{port}" if port else "")
    if field == "warehouse_dsn":
        return f"postgresql://{netloc}/{schema or 'twin'}"
    if field == "mongo_uri":
        scheme = "mongodb+srv" if extra.get("srv") else "mongodb"
        return f"{scheme}://{netloc}/"
    scheme = extra.get("scheme") or ("https" if conn_type == "https" else "http")
    return f"{scheme}://{netloc}"


def endpoint_to_connection(field: str, url: str, **extra: object) -> str:
    """The JSON form of an Airflow connection (`AIRFLOW_CONN_*`) for an endpoint URL."""
    parts = urlsplit(url)
    conn_type = {"warehouse_dsn": "postgres", "mongo_uri": "mongo"}.get(field, "http")
    body: dict[str, object] = {"conn_type": conn_type, "host": parts.hostname, "port": parts.port}
    if parts.username:
        body["login"] = unquote(parts.username)
    if parts.password:
        body["password"] = unquote(parts.password)
    if field == "warehouse_dsn":
        body["schema"] = parts.path.lstrip("/")
    if extra:
        body["extra"] = extra
    return json.dumps(body, separators=(",", ":"))


def __getattr__(name: str) -> Settings:
    """`twin.settings.settings`: the process-wide settings, read on first use (not at import)."""
    if name == "settings":
        value = load_settings()
        globals()["settings"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
