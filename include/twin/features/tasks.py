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


def plan_pieces_task() -> list[dict]:
    """The changed documents of `marts.documents` in pieces for `sync_piece_task` (mapped: one
    task instance per piece, none when nothing changed). Raises `NoAuthorDocuments` when the
    marts hold nothing of the platform's author (`TWIN_AUTHOR`)."""
    with clear_service_errors("feature sync"):
        from twin.features.pipeline import plan_pieces
        from twin.settings import load_settings
        from twin.store.warehouse import require_author_documents, warehouse_connection

        settings = load_settings()
        with warehouse_connection(settings) as conn:  # the platform's author has documents
            require_author_documents(conn, settings.author, "twin_features")
        return plan_pieces(settings)


def sync_piece_task(piece: dict) -> dict:
    """Chunk, embed and load one piece into the vector index; its counts and failures."""
    with clear_service_errors("feature sync"):
        from twin.features.pipeline import sync_piece
        from twin.settings import load_settings

        return sync_piece(load_settings(), piece).as_dict()


def finish_sync_task(pieces: list[dict] | None) -> dict:
    """Add up the pieces, forget documents gone from the mart, activate a new index version.

    Keys: index_version, model_name, dimension, documents_seen, documents_changed,
    documents_deleted, chunks_embedded, chunks_written, chunks_deleted, chunks_updated,
    activated, failures, seconds, changed. Raises `FeatureSyncFailed` when any document failed
    (after every other document was indexed).
    """
    with clear_service_errors("feature sync"):
        from twin.features.pipeline import finish_sync
        from twin.settings import load_settings

        result = finish_sync(load_settings(), list(pieces or [])).as_dict()
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
