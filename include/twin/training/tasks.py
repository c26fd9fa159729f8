"""What the twin_training DAG's tasks call: plain functions over a params dict.

`plan_training` validates everything before a process starts (errors name the parameter) and
says whether this dataset and configuration were already trained; `train_and_register` runs the
pipeline; `publish_candidate` emits the `model_candidates` asset only for a new version.
"""

from __future__ import annotations

from typing import Any

from twin.domain.samples import DatasetSnapshot
from twin.errors import NoAuthorDocuments
from twin.settings import Settings, load_settings
from twin.training.params import (
    LATEST,
    DatasetChoice,
    ParamsError,
    TrainingParams,
    available_ranks,
    parse_choice,
    parse_params,
)

SAMPLE = "sample"


def snapshot_plugins() -> dict:
    """Entry points of group `twin.snapshots`, by name (each loads to a `() -> DatasetSnapshot`)."""
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group="twin.snapshots")}


def read_run(
    raw: dict[str, Any], settings: Settings | None = None
) -> tuple[DatasetChoice, TrainingParams]:
    """(which dataset, training parameters) from DAG/CLI params, as strictly as the form checks
    them; unknown keys are refused. A missing (None) `base_model` is the configured one
    (`TWIN_TRAINING_BASE_MODEL`), missing `ranks` every device (`available_ranks`); a missing
    author stays None: the platform's author."""
    raw = {k: v for k, v in raw.items() if v is not None}
    choice = parse_choice({k: raw.pop(k) for k in DatasetChoice.model_fields if k in raw})
    if "base_model" not in raw:
        raw["base_model"] = (settings or load_settings()).training_base_model
    if "ranks" not in raw:
        raw["ranks"] = available_ranks()
    return choice, parse_params(raw)


def split_params(
    raw: dict[str, Any], settings: Settings | None = None
) -> tuple[str, TrainingParams]:
    """(dataset version, training parameters) from DAG/CLI params; see `read_run`."""
    choice, params = read_run(raw, settings)
    return choice.dataset_version.strip(), params


def resolve_snapshot(
    settings: Settings, dataset_version: str, author: str | None = None
) -> DatasetSnapshot:
    """The dataset version to train on: an id (or prefix), `latest` of `author` (None: the
    platform's author, `Settings.author`), or the name of a snapshot an installed package offers
    (entry point group `twin.snapshots`; the bundled sample author offers `sample`, built from
    its writing without the warehouse). No dataset of the author: `NoAuthorDocuments`."""
    offered = snapshot_plugins()
    if dataset_version in offered:
        return offered[dataset_version].load()()
    from twin.store.datasets import latest_dataset_version, load_dataset_snapshot

    if dataset_version == LATEST:
        author = author or settings.author
        latest = latest_dataset_version(settings, author)
        if latest is None:
            raise NoAuthorDocuments(
                "twin_training", author, "dataset version", "run twin_datasets for them first"
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
    choice, params = read_run(raw, settings)
    dataset_version = choice.dataset_version.strip()
    snapshot = resolve_snapshot(settings, dataset_version, choice.author)
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
    choice, params = read_run(raw, settings)
    snapshot = resolve_snapshot(settings, choice.dataset_version.strip(), choice.author)
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
    """DAG Params as training input: a Param left empty (None) means "the configured one"; an
    empty string is a value, refused like the form refuses it."""
    return {k: v for k, v in params.items() if v is not None}


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
