"""The `twin_features` DAG's task callables.

Light to import (the DAG processor parses the DAG often): each loads the feature code, torch and
the embedding model only when it runs. A service that is down fails the task with
`ServiceUnavailable` naming it; documents that could not be indexed fail the sync task after
every other document was indexed, naming each.
"""

from __future__ import annotations

from twin.errors import clear_service_errors

FAILURES_SHOWN = 20


class FeatureSyncFailed(RuntimeError):
    """Some documents could not be chunked or embedded; the others were indexed."""

    def __init__(self, result: dict) -> None:
        self.result = result
        failures = result.get("failures") or []
        lines = [
            f"feature sync: {len(failures)} document(s) failed "
            f"({result.get('documents_changed', 0)} others indexed in "
            f"{result.get('index_version')}):"
        ]
        lines += [f"  - {f}" for f in failures[:FAILURES_SHOWN]]
        if len(failures) > FAILURES_SHOWN:
            lines.append(f"  ... and {len(failures) - FAILURES_SHOWN} more")
        super().__init__("\n".join(lines))


def sync_features_task() -> dict:
    """Sync `marts.documents` into the vector index (incremental); the counts as a dict.

    Keys: index_version, model_name, dimension, documents_seen, documents_changed,
    documents_deleted, chunks_embedded, chunks_written, chunks_deleted, chunks_updated,
    activated, failures, seconds, changed. Raises `FeatureSyncFailed` when any document failed,
    `NoAuthorDocuments` when the marts hold nothing of the platform's author (`TWIN_AUTHOR`).
    """
    with clear_service_errors("feature sync"):
        from twin.features.pipeline import sync_features
        from twin.settings import load_settings
        from twin.store.warehouse import require_author_documents, warehouse_connection

        settings = load_settings()
        with warehouse_connection(settings) as conn:  # the platform's author has documents
            require_author_documents(conn, settings.author, "twin_features")
        result = sync_features(settings).as_dict()
    if result.get("failures"):
        raise FeatureSyncFailed(result)
    return result


def maintain_index_task() -> dict:
    """ANALYZE the active index, ensure its search indexes, drop old retired versions; a report
    with the active version, row count and sizes in bytes."""
    with clear_service_errors("index maintenance"):
        from twin.features.pipeline import maintain_index
        from twin.settings import load_settings

        return maintain_index(load_settings())


def publish_if_changed(result: dict) -> dict:
    """Succeed (emitting the vector-chunks asset) only when the sync changed the index."""
    from airflow.sdk.exceptions import AirflowSkipException

    if not result.get("changed"):
        raise AirflowSkipException("the vector index is already up to date: nothing to publish")
    return result
