"""The `twin_features` DAG's task callables.

Light to import (the DAG processor parses the DAG often): each loads the feature code, torch and
the embedding model only when it runs.
"""

from __future__ import annotations


def sync_features_task() -> dict:
    """Sync `marts.documents` into the vector index (incremental); the counts as a dict.

    Keys: index_version, model_name, dimension, documents_seen, documents_changed,
    documents_deleted, chunks_embedded, chunks_written, chunks_deleted, chunks_updated,
    activated, failures, seconds, changed.
    """
    from twin.features.pipeline import sync_features
    from twin.settings import load_settings

    return sync_features(load_settings()).as_dict()


def maintain_index_task() -> dict:
    """ANALYZE the active index, ensure its search indexes, drop old retired versions; a report
    with the active version, row count and sizes in bytes."""
    from twin.features.pipeline import maintain_index
    from twin.settings import load_settings

    return maintain_index(load_settings())


def publish_if_changed(result: dict) -> dict:
    """Succeed (emitting the vector-chunks asset) only when the sync changed the index."""
    from airflow.exceptions import AirflowSkipException

    if not result.get("changed"):
        raise AirflowSkipException("the vector index is already up to date: nothing to publish")
    return result
