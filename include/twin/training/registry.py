"""Log a finished training run to MLflow and register its merged model as a new version of
`settings.registered_model`, tagged for review and aliased `challenger`."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from twin.domain.devices import detect, precision_name
from twin.domain.generation import GenerationSettings
from twin.domain.models import (
    ADAPTER_ARTIFACT,
    CHALLENGER,
    DEEPSPEED_ARTIFACT,
    EVALUATION_ARTIFACT,
    MODEL_CARD_ARTIFACT,
    ReviewState,
    VersionTag,
)
from twin.domain.samples import DatasetSnapshot, Split
from twin.settings import Settings
from twin.store.tracking import tracking_client
from twin.training.gate import evaluation_gate
from twin.training.params import TrainingParams

MAX_DIGEST = 32  # as the datasets stage logs versions (MLflow allows 36)
# MLflow stores a version's description in a varchar(5000)
MAX_DESCRIPTION_CHARS = 5000


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str


@dataclass(frozen=True)
class RunArtifacts:
    """Everything a finished run left on disk, as the registry logs it."""

    run_dir: Path
    merged_dir: Path
    adapters: dict[str, Path]
    deepspeed_config: Path | None
    metrics: list[dict]
    evaluation: dict
    steps: dict[str, int]


def find_trained_version(settings: Settings, dataset_version: str, config_hash: str) -> str | None:
    """The registered version already trained on this dataset with this configuration, if any."""
    client = tracking_client(settings)
    query = (
        f"name = '{settings.registered_model}' "
        f"and tags.{VersionTag.DATASET_VERSION} = '{dataset_version}' "
        f"and tags.{VersionTag.CONFIG_HASH} = '{config_hash}'"
    )
    versions = client.search_model_versions(query)
    return max((v.version for v in versions), key=int) if versions else None


def warehouse_source(uri: str):
    """An MLflow dataset source for a dataset version stored in the warehouse (by URI)."""
    from mlflow.data.dataset_source import DatasetSource

    class WarehouseDatasetSource(DatasetSource):
        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "twin_warehouse"

        def load(self) -> str:
            return self.uri

        @staticmethod
        def _can_resolve(raw_source) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source):
            return cls(str(raw_source))

        def to_dict(self) -> dict:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict):
            return cls(source_dict["uri"])

    return WarehouseDatasetSource(uri)


def dataset_input(snapshot: DatasetSnapshot):
    """The dataset version as an MLflow dataset (lineage), its digest the version's identity."""
    import mlflow.data
    import pandas as pd

    if snapshot.version.export_uri:  # a stored version: the very dataset the datasets run logged
        from twin.datasets.lineage import snapshot_mlflow_dataset

        return snapshot_mlflow_dataset(snapshot)
    rows = [
        {
            "kind": "instruction",
            "sample_id": s.sample_id,
            "document_id": s.document_id,
            "split": str(s.split),
        }
        for s in snapshot.instructions
    ] + [
        {
            "kind": "preference",
            "sample_id": s.sample_id,
            "document_id": s.document_id,
            "split": str(s.split),
        }
        for s in snapshot.preferences
    ]
    version = snapshot.version
    source = (
        version.export_uri
        or f"postgres://warehouse:5432/twin/ml/dataset_versions/{version.version}"
    )
    return mlflow.data.from_pandas(
        pd.DataFrame(rows),
        source=warehouse_source(source),
        name=f"twin-dataset-{version.version}",
        digest=version.version[:MAX_DIGEST],
    )


def register_candidate(
    settings: Settings,
    *,
    params: TrainingParams,
    snapshot: DatasetSnapshot,
    artifacts: RunArtifacts,
    base_model_digest: str,
    tokenizer_fingerprint: str,
    model_card: str,
) -> RegisteredVersion:
    """One MLflow run (params, per-step metrics, lineage, artefacts) and one new model version."""
    import mlflow
    import pandas as pd

    uri = settings.require("mlflow_tracking_uri")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    dataset_version = snapshot.version.version
    config_hash = params.config_hash()
    lineage_tags = {
        VersionTag.DATASET_VERSION.value: dataset_version,
        VersionTag.BASE_MODEL.value: params.base_model,
        VersionTag.TOKENIZER_FINGERPRINT.value: tokenizer_fingerprint,
        VersionTag.CONFIG_HASH.value: config_hash,
    }
    headline = headline_metrics(artifacts.evaluation)
    run_name = f"{params.base_model}-{dataset_version[:8]}-{config_hash[:8]}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(lineage_tags | {"author": snapshot.version.author})
        mlflow.log_params(
            params.model_dump(mode="json", exclude={"force"})
            | {"target_modules": ",".join(params.target_modules)}
            | {
                "dataset_version": dataset_version,
                "base_model_digest": base_model_digest,
                "tokenizer_fingerprint": tokenizer_fingerprint,
                "config_hash": config_hash,
                "train_instructions": len(snapshot.instruction_split(Split.TRAIN)),
                "train_preferences": len(snapshot.preference_split(Split.TRAIN)),
                "precision": precision_name(params.bf16, detect()),
            }
        )
        _log_step_metrics(run.info.run_id, artifacts.metrics, uri)
        mlflow.log_metrics(headline | {f"steps_{k}": float(v) for k, v in artifacts.steps.items()})
        mlflow.log_input(dataset_input(snapshot), context="training")
        for phase, folder in artifacts.adapters.items():
            mlflow.log_artifacts(str(folder), f"{ADAPTER_ARTIFACT}/{phase}")
        if artifacts.deepspeed_config is not None:
            mlflow.log_artifact(str(artifacts.deepspeed_config), DEEPSPEED_ARTIFACT)
        table = pd.DataFrame(artifacts.evaluation["rows"] + [artifacts.evaluation["author"]])
        mlflow.log_table(table, f"{EVALUATION_ARTIFACT}/results.json")
        mlflow.log_dict(
            artifacts.evaluation.get("generations", {}), f"{EVALUATION_ARTIFACT}/generations.json"
        )
        mlflow.log_dict(
            {
                k: artifacts.evaluation.get(k)
                for k in ("generation", "generation_trials", "stock_phrases", "seeds")
            },
            f"{EVALUATION_ARTIFACT}/decoding.json",
        )
        plots = artifacts.run_dir / "plots"
        from twin.training.report import evaluation_plot, loss_plot

        mlflow.log_artifact(
            str(loss_plot(artifacts.metrics, plots / "loss.png")), EVALUATION_ARTIFACT
        )
        mlflow.log_artifact(
            str(evaluation_plot(artifacts.evaluation["rows"], plots / "evaluation.png")),
            EVALUATION_ARTIFACT,
        )
        mlflow.log_text(model_card, MODEL_CARD_ARTIFACT)
    info = _log_model_in_subprocess(
        settings, run.info.run_id, artifacts.merged_dir, artifacts.run_dir
    )
    client = tracking_client(settings)
    with contextlib.suppress(Exception):  # it already exists
        client.create_registered_model(settings.registered_model)
    verdict = evaluation_gate(
        artifacts.evaluation,
        settings.eval_max_perplexity_ratio,
        settings.eval_max_style_drop,
        max_repeat_rate=settings.eval_max_repeat_rate,
        min_voice_gain=settings.eval_min_voice_gain,
        absolute=settings.eval_absolute_floors,
    )
    tags = lineage_tags | {
        VersionTag.REVIEW.value: ReviewState.PENDING.value,
        VersionTag.EVALUATION_PASSED.value: str(verdict.passed).lower(),
        VersionTag.EVALUATION_NOTE.value: f"{verdict.candidate}: {verdict.note}"[:5000],
    }
    tags |= {k: f"{v:.4g}" for k, v in headline.items()}
    if "generation" in artifacts.evaluation:
        tags |= GenerationSettings.model_validate(artifacts.evaluation["generation"]).tags()
    version = client.create_model_version(
        name=settings.registered_model,
        source=info["model_uri"],
        run_id=run.info.run_id,
        tags=tags,
        description=version_description(model_card),
        model_id=info["model_id"],
    )
    client.set_registered_model_alias(settings.registered_model, CHALLENGER, version.version)
    return RegisteredVersion(
        settings.registered_model,
        str(version.version),
        run.info.run_id,
        f"models:/{settings.registered_model}/{version.version}",
    )


def version_description(model_card: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """The model card as the version's description, cut at a section boundary where it is
    longer than MLflow stores, with a pointer to the whole card (the run's artifact)."""
    if len(model_card) <= limit:
        return model_card
    pointer = f"\n\n(cut here: the whole card is the run's artifact `{MODEL_CARD_ARTIFACT}`)\n"
    head = model_card[: limit - len(pointer)]
    cut = head.rfind("\n## ")
    return (head[:cut] if cut > 0 else head).rstrip() + pointer


def _log_model_in_subprocess(
    settings: Settings, run_id: str, model_dir: Path, run_dir: Path
) -> dict:
    import subprocess
    import sys

    from twin.training.launch import launch_env

    env = launch_env(settings, 1) | {"MLFLOW_TRACKING_URI": settings.require("mlflow_tracking_uri")}
    result = subprocess.run(
        [sys.executable, "-m", "twin.training.log_model", run_id, str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (run_dir / "log_model.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"logging the merged model failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def headline_metrics(evaluation: dict) -> dict[str, float]:
    """`eval_<model>_<metric>` for every evaluated model and numeric metric."""
    out = {}
    for row in evaluation.get("rows", []):
        for key, value in row.items():
            if isinstance(value, int | float) and key != "model":
                out[f"eval_{row['model']}_{key}"] = float(value)
    return out


def _log_step_metrics(run_id: str, rows: list[dict], uri: str) -> None:
    """Per-step metrics from the workers' JSONL (`sft/loss`, `dpo/rewards/margins`...), batched."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    skip = {"phase", "step", "time", "ranks"}
    metrics = [
        Metric(f"{row['phase']}/{key}", float(value), int(row["time"] * 1000), int(row["step"]))
        for row in rows
        for key, value in row.items()
        if key not in skip and isinstance(value, int | float)
    ]
    client = MlflowClient(tracking_uri=uri)
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start : start + 900])


def load_metrics(paths: list[Path]) -> list[dict]:
    from twin.training.data import read_jsonl

    # a resumed run repeats the steps after its last checkpoint: keep the latest row of each step
    latest: dict[tuple[str, int], dict] = {}
    for path in paths:
        for row in read_jsonl(path):
            latest[(row["phase"], int(row["step"]))] = row
    return [latest[k] for k in sorted(latest, key=lambda k: (k[0] != "sft", k[1]))]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
