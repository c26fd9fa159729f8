"""What the twin_training DAG's tasks call: plain functions over a params dict.

`plan_training` validates everything before a process starts (errors name the parameter) and
says whether this dataset and configuration were already trained; `train_and_register` runs the
pipeline; `publish_candidate` emits the `model_candidates` asset only for a new version.
"""

from __future__ import annotations

from typing import Any

from twin.domain.samples import DatasetSnapshot
from twin.settings import Settings, load_settings
from twin.training.params import LATEST, ParamsError, TrainingParams, parse_params

SAMPLE = "sample"


def snapshot_plugins() -> dict:
    """Entry points of group `twin.snapshots`, by name (each loads to a `() -> DatasetSnapshot`)."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group="twin.snapshots")}


def split_params(
    raw: dict[str, Any], settings: Settings | None = None
) -> tuple[str, TrainingParams]:
    """(dataset version, training parameters) from DAG/CLI params; unknown keys are refused. An
    empty or missing `base_model` is the configured one (`TWIN_TRAINING_BASE_MODEL`)."""
    raw = dict(raw)
    dataset_version = str(raw.pop("dataset_version", LATEST) or LATEST).strip()
    raw.pop("author", None)  # it picks the dataset version (`resolve_snapshot`), not the model
    if not str(raw.get("base_model") or "").strip():
        raw["base_model"] = (settings or load_settings()).training_base_model
    return dataset_version, parse_params(raw)


def resolve_snapshot(
    settings: Settings, dataset_version: str, author: str | None = None
) -> DatasetSnapshot:
    """The dataset version to train on: an id (or prefix), `latest` (of `author`), or the name of
    a snapshot an installed package offers (entry point group `twin.snapshots`; the bundled
    sample author offers `sample`, built from its writing without the warehouse)."""
    offered = snapshot_plugins()
    if dataset_version in offered:
        return offered[dataset_version].load()()
    from twin.store.datasets import latest_dataset_version, load_dataset_snapshot

    if dataset_version == LATEST:
        latest = latest_dataset_version(settings, author)
        if latest is None:
            who = f" for {author}" if author else ""
            raise ParamsError(
                "dataset_version", f"no dataset version exists{who}: run twin_datasets first"
            )
        dataset_version = latest.version
    try:
        return load_dataset_snapshot(settings, dataset_version)
    except LookupError as exc:
        raise ParamsError("dataset_version", str(exc)) from None


def plan_training(raw: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Validate the run and look it up in the registry: `{"train": bool, ...}`."""
    from twin.training.pipeline import validate_run
    from twin.training.registry import find_trained_version

    settings = settings or load_settings()
    dataset_version, params = split_params(raw, settings)
    snapshot = resolve_snapshot(settings, dataset_version, raw.get("author"))
    validate_run(params, snapshot, settings)
    config_hash = params.config_hash()
    existing = find_trained_version(settings, snapshot.version.version, config_hash)
    return {
        "train": params.force or existing is None,
        "existing_version": existing,
        "dataset_version": snapshot.version.version,
        # what to load again in the training task: the sample snapshot is not in the warehouse
        "dataset_request": SAMPLE if dataset_version == SAMPLE else snapshot.version.version,
        "config_hash": config_hash,
        "params": params.model_dump(mode="json"),
    }


def train_and_register(raw: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Run the whole pipeline (skipping when already trained unless `force`)."""
    from twin.training.pipeline import train_candidate

    settings = settings or load_settings()
    dataset_version, params = split_params(raw, settings)
    snapshot = resolve_snapshot(settings, dataset_version, raw.get("author"))
    return train_candidate(settings, params, snapshot).as_dict()


def train_from_plan(plan: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The DAG's training task: trains what `plan_training` validated (on the same version)."""
    if not plan["train"]:
        return {
            "status": "skipped",
            "version": plan["existing_version"],
            "dataset_version": plan["dataset_version"],
            "config_hash": plan["config_hash"],
        }
    raw = plan["params"] | {"dataset_version": plan.get("dataset_request", plan["dataset_version"])}
    result = train_and_register(raw, settings)
    result.pop("evaluation", None)
    return result


def publish_candidate(result: dict[str, Any]) -> dict[str, Any]:
    """Succeed (emitting `model_candidates`) only when a new version was registered."""
    from airflow.sdk.exceptions import AirflowSkipException

    if result.get("status") != "trained":
        raise AirflowSkipException(
            f"dataset {result.get('dataset_version', '?')[:12]} with configuration "
            f"{result.get('config_hash')} is already version {result.get('version')}: nothing new"
        )
    return result


def dag_params_to_raw(params: dict[str, Any]) -> dict[str, Any]:
    """DAG Params as training input: empty strings mean "default", `author` only picks `latest`."""
    return {k: v for k, v in params.items() if v not in ("", None)}


def plan_task() -> dict[str, Any]:
    """Airflow task: validate the DAG run's Params before anything launches."""
    from airflow.sdk import get_current_context

    return plan_training(dag_params_to_raw(dict(get_current_context()["params"])))


def publish_task(result: dict[str, Any]) -> dict[str, Any]:
    """Airflow task: emit `model_candidates` with the new version in the event's extra."""
    from airflow.sdk import Asset, get_current_context

    from twin.assets import MODEL_CANDIDATES

    publish_candidate(result)
    extra = {k: result.get(k) for k in ("version", "dataset_version", "config_hash", "run_id")}
    get_current_context()["outlet_events"][Asset(**MODEL_CANDIDATES)].extra = extra
    return extra
