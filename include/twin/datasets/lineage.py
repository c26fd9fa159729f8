"""A dataset version's lineage outside the warehouse: the JSONL export in the object store and the
MLflow dataset a training run logs as its input (same name, digest and source everywhere)."""

from __future__ import annotations

import json
import re
from typing import Any

from twin.domain.samples import DatasetSnapshot, InstructionSample, PreferenceSample
from twin.settings import Settings
from twin.store.object_store import object_store

COLUMNS = [
    "kind",
    "split",
    "sample_id",
    "document_id",
    "platform",
    "document_kind",
    "section",
    "prompt",
    "answer",
    "rejected",
    "generator",
]


def sample_rows(
    instructions: list[InstructionSample], preferences: list[PreferenceSample]
) -> list[dict[str, Any]]:
    """One flat record per sample, instructions first, in a stable order."""
    rows = [
        {
            "kind": "instruction",
            "split": s.split.value,
            "sample_id": s.sample_id,
            "document_id": s.document_id,
            "platform": s.platform,
            "document_kind": s.document_kind,
            "section": s.section,
            "prompt": s.instruction,
            "answer": s.answer,
            "rejected": None,
            "generator": s.generator,
        }
        for s in instructions
    ]
    rows += [
        {
            "kind": "preference",
            "split": s.split.value,
            "sample_id": s.sample_id,
            "document_id": s.document_id,
            "platform": s.platform,
            "document_kind": s.document_kind,
            "section": "",
            "prompt": s.prompt,
            "answer": s.chosen,
            "rejected": s.rejected,
            "generator": s.generator,
        }
        for s in preferences
    ]
    return sorted(rows, key=lambda r: (r["kind"], r["split"], r["document_id"], r["sample_id"]))


def export_key(author: str, version: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", author.lower()).strip("-") or "author"
    return f"datasets/{slug}/{version}/samples.jsonl"


def export_jsonl(settings: Settings, author: str, version: str, rows: list[dict[str, Any]]) -> str:
    """Write the version's samples as JSON lines to the object store; the object's URL."""
    blob = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return object_store(settings).put(
        export_key(author, version), blob.encode(), content_type="application/x-ndjson"
    )


def dataset_name(version: str) -> str:
    return f"twin-dataset-{version[:12]}"


def mlflow_dataset(rows: list[dict[str, Any]], version: str, export_uri: str | None):
    """The MLflow `PandasDataset` for a version (digest = the version id, source = the export)."""
    import mlflow.data
    import pandas as pd

    frame = pd.DataFrame(rows, columns=COLUMNS)
    return mlflow.data.from_pandas(
        frame, source=export_uri or "", name=dataset_name(version), digest=version[:32]
    )


def snapshot_mlflow_dataset(snapshot: DatasetSnapshot):
    """The MLflow dataset of a loaded version, for a training run's `mlflow.log_input`."""
    rows = sample_rows(list(snapshot.instructions), list(snapshot.preferences))
    return mlflow_dataset(rows, snapshot.version.version, snapshot.version.export_uri)


def log_to_mlflow(
    settings: Settings,
    version: str,
    rows: list[dict[str, Any]],
    export_uri: str | None,
    *,
    params: dict[str, Any],
    counts: dict[str, int],
    drop_reasons: dict[str, int],
) -> str:
    """Log the version as a dataset input of a run in the datasets experiment; the run id."""
    from mlflow.entities import DatasetInput, InputTag, Metric, Param

    from twin.store.tracking import tracking_client

    client = tracking_client(settings)
    name = settings.datasets_experiment
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run = client.create_run(
        experiment_id,
        run_name=dataset_name(version),
        tags={"dataset_version": version, "export_uri": export_uri or ""},
    )
    run_id = run.info.run_id
    dataset = mlflow_dataset(rows, version, export_uri)
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "dataset")]
            )
        ],
    )
    stamp = 0
    client.log_batch(
        run_id,
        metrics=[Metric(f"samples.{k.replace('/', '.')}", v, stamp, 0) for k, v in counts.items()]
        + [Metric(f"dropped.{k}", v, stamp, 0) for k, v in drop_reasons.items()],
        params=[Param(k, str(v)[:500]) for k, v in sorted(params.items())],
    )
    client.set_terminated(run_id)
    return run_id
