"""The `twin_datasets` DAG's task callables (light to import: the build loads when it runs)."""

from __future__ import annotations

from typing import Any

# Upper bound on sections sent to the local model in one run: it generates a few tokens a second.
SMOLLM2_MAX_INSTRUCTIONS = 200


def dataset_options(params: dict[str, Any]) -> dict[str, Any]:
    """The build options from the DAG's Params, validated as strictly as the form does (no "5"
    for a number); a ValueError naming each bad Param.

    A Param left empty (None) takes the default the form shows; no author is the platform's
    author (`Settings.author`, read here, at run time).
    """
    from pydantic import ValidationError

    from twin.datasets.params import FORM_FIELDS, DatasetOptions
    from twin.form import named_problems, validate_strict
    from twin.settings import load_settings

    unknown = sorted(set(params) - set(FORM_FIELDS))
    if unknown:
        raise ValueError(f"invalid twin_datasets Params: unknown Params {unknown}")
    values = {name: params[name] for name in FORM_FIELDS if params.get(name) is not None}
    if "author" not in values:
        values["author"] = load_settings().author
    try:
        options = validate_strict(DatasetOptions, values)
    except ValidationError as exc:
        raise ValueError(f"invalid twin_datasets Params: {named_problems(exc)}") from None
    if options.generator == "smollm2" and not (
        0 < options.max_instructions <= SMOLLM2_MAX_INSTRUCTIONS
    ):
        raise ValueError(
            "invalid twin_datasets Params: Param max_instructions must be between 1 and "
            f"{SMOLLM2_MAX_INSTRUCTIONS} with generator 'smollm2' (the local model is slow)"
        )
    return options.model_dump(mode="json")


def build_dataset_task(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build (or find) the dataset version for the Params; the build's report as a dict.

    Invalid Params fail the task at once, without the retry a transient failure gets; raises
    `NoAuthorDocuments` naming the author when the marts hold nothing of theirs.
    """
    from airflow.sdk import get_current_context

    from twin.datasets.build import build_dataset
    from twin.datasets.params import DatasetOptions
    from twin.settings import load_settings
    from twin.store.warehouse import require_author_documents, warehouse_connection

    params = params if params is not None else dict(get_current_context()["params"])
    try:
        options = DatasetOptions.model_validate(dataset_options(params))
    except ValueError as exc:  # the same Params fail the same way: no retry
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None
    settings = load_settings()
    with warehouse_connection(settings) as conn:  # no documents of the author: fail, named
        require_author_documents(conn, options.author, "twin_datasets")
    return build_dataset(settings, options).as_dict()


def publish_if_new(result: dict[str, Any]) -> dict[str, Any]:
    """Succeed (emitting the datasets asset) only when the build created a new version."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not result.get("created"):
        raise AirflowSkipException(
            f"dataset version {str(result.get('version'))[:16]} already exists: nothing to publish"
        )
    return {k: result[k] for k in ("version", "counts", "export_uri", "mlflow_run_id")}
