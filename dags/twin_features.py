"""Keep the author's retrieval index in step with the warehouse: chunk, embed, load into pgvector.

Scheduled on the marts asset. Only new or changed documents are chunked and only new chunks are
embedded; chunks of deleted or changed documents are removed. The changed documents are split
into pieces, one mapped task each on the embedding queue, so every embedding worker takes a share
(a rerun with nothing new maps none); a retry redoes only its piece. The index is then maintained
(ANALYZE, search indexes, retired versions dropped), retrieval is scored on the labelled
questions (a recall@5 below the gate fails the run; skipped for an author without labels), and
the vectors asset is emitted only when the index changed.
"""

from datetime import datetime, timedelta

from airflow.sdk import Asset, dag, task

from twin.assets import EMBEDDING_POOL, EMBEDDING_QUEUE, VECTOR_CHUNKS, WAREHOUSE_MARTS
from twin.features.tasks import (
    finish_sync_task,
    maintain_index_task,
    plan_pieces_task,
    publish_if_changed,
    sync_piece_task,
)
from twin.rag.tasks import retrieval_eval_task


@dag(
    schedule=[Asset(**WAREHOUSE_MARTS)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    tags=["twin", "feature", "rag"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=2)},
    doc_md=__doc__,
)
def twin_features():
    pieces = task(plan_pieces_task, task_id="plan_pieces")()
    loaded = task(
        sync_piece_task,
        task_id="chunk_embed_load",
        pool=EMBEDDING_POOL,
        queue=EMBEDDING_QUEUE,
        retry_delay=timedelta(seconds=30),  # a piece whose worker died is redone soon, elsewhere
    ).expand(piece=pieces)
    # none_failed: a run with nothing changed maps no piece, and still finishes (and publishes
    # nothing)
    synced = task(finish_sync_task, task_id="finish_sync", trigger_rule="none_failed")(loaded)
    maintained = task(maintain_index_task, task_id="maintain_index")()
    # a drop in retrieval quality on the labelled set stops the asset
    gated = task(retrieval_eval_task, task_id="retrieval_gate", retries=0)()
    published = task(publish_if_changed, outlets=[Asset(**VECTOR_CHUNKS)])(synced)
    synced >> maintained >> gated >> published


twin_features()
