"""Incremental feature sync: `marts.documents` → chunks → embeddings → `vectors.chunks`.

Work is proportional to what changed. Each run compares `(document_id, clean_hash, metadata)` in
`marts.documents` with `vectors.document_state` of the target index version:

- new and changed documents are chunked again; only chunk ids the index does not hold yet are
  embedded (a chunk id is a content hash, so the unchanged chunks of an edited document are
  kept), chunks that no longer exist are deleted, and kept chunks get their new position and
  metadata; per batch of documents this is one transaction, so readers never see a document
  half-updated;
- documents gone from the mart lose their chunks;
- a run with nothing new embeds nothing, writes nothing, and does not even load the model.

The target version is the one for the configured embedding model and the chunker version. When
that differs from the active version (a model switch), the new version is built from every
document beside the active one, then activated atomically; readers keep the old index until then.

`sync_features` does it all in one process. Airflow fans it out instead: `plan_pieces` splits the
changed documents into pieces (none when nothing changed), each worker runs `sync_piece` on one
(idempotent: documents already in step are skipped, so a retry redoes only what its first try
did not commit), and `finish_sync` adds up the pieces, forgets documents gone from the mart and
activates a new version. Pieces hold a shared lock, the other steps an exclusive one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import psycopg
from psycopg import sql
from tqdm.auto import tqdm

from twin.features.chunk import CHUNKER_VERSION, Chunk, ChunkBudget, MartDocument, chunk_document
from twin.features.embed import Embedder, TextEmbedder
from twin.features.marts import (
    MARTS_TABLE,
    MartEntry,
    mart_documents,
    mart_entries,
    require_marts,
)
from twin.settings import Settings
from twin.store import vectors
from twin.store.vectors import ChunkRow, DocumentState, IndexVersion

log = logging.getLogger(__name__)

# Documents per chunk + embed + write round (one transaction each); bigger rounds give the
# model longer runs of texts to sort by length, so embedding keeps its bare throughput.
DOCUMENT_BATCH = 256
EMBED_BATCH = 64
# Session-level advisory lock key: one sync (or maintenance) at a time per warehouse.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"twin.features.sync").digest()[:4], "big")


@dataclass
class FeatureSyncResult:
    """What one sync did; a re-run with nothing new has every count but `documents_seen` at 0."""

    index_version: str = ""
    model_name: str = ""
    dimension: int = 0
    documents_seen: int = 0
    documents_changed: int = 0
    documents_deleted: int = 0
    chunks_embedded: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    chunks_updated: int = 0
    activated: bool = False
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def timed(self, stage: str, seconds: float) -> None:
        """Add `seconds` to a stage's total (chunk, embed, write, index)."""
        self.timings[stage] = round(self.timings.get(stage, 0.0) + seconds, 3)

    @property
    def changed(self) -> bool:
        """True when the index's content changed (what should trigger downstream pipelines)."""
        return bool(
            self.chunks_written or self.chunks_deleted or self.chunks_updated or self.activated
        )

    def as_dict(self) -> dict:
        """Plain values, for task results and logs."""
        return {**asdict(self), "changed": self.changed}


def sync_features(
    settings: Settings,
    *,
    conn: psycopg.Connection | None = None,
    embedder: TextEmbedder | None = None,
    budget: ChunkBudget | None = None,
    document_batch: int = DOCUMENT_BATCH,
    embed_batch: int = EMBED_BATCH,
    progress: bool | None = None,
) -> FeatureSyncResult:
    """Bring the index of the configured embedding model up to date with `marts.documents`.

    `conn` (optional) is used in autocommit mode (a transaction pending on it is committed
    first); the sync commits its own transactions, one per batch of documents.
    `embedder` defaults to the model the settings name (`Embedder.from_settings`);
    `budget` defaults to the model's window (`max_seq_length`) with 32 tokens of overlap.
    Returns the counts; per-document failures are listed in `failures`, not raised.
    """
    began = time.monotonic()
    embedder = embedder or Embedder.from_settings(settings)
    budget = budget or ChunkBudget(max_tokens=embedder.max_seq_length)
    with _autocommit(settings, conn) as db, _sync_lock(db):
        result = _sync(
            db,
            embedder,
            budget,
            document_batch,
            embed_batch,
            progress,
            settings.index_build_memory_mb,
        )
    result.seconds = round(time.monotonic() - began, 3)
    log.info("feature sync: %s", json.dumps(result.as_dict()))
    return result


def plan_pieces(
    settings: Settings,
    *,
    conn: psycopg.Connection | None = None,
    embedder: TextEmbedder | None = None,
    piece_documents: int = DOCUMENT_BATCH,
) -> list[dict]:
    """The new and changed documents in pieces of at most `piece_documents`, each a dict with
    the target `index_version` and its `documents`; [] when nothing changed."""
    embedder = embedder or Embedder.from_settings(settings)
    with _autocommit(settings, conn) as db, _sync_lock(db):
        changes = _changes(db, embedder)
    return [
        {"index_version": changes.target.version_id, "documents": batch}
        for batch in _batches(_in_write_order(changes.todo, changes.marts), piece_documents)
    ]


def sync_piece(
    settings: Settings,
    piece: dict,
    *,
    conn: psycopg.Connection | None = None,
    embedder: TextEmbedder | None = None,
    budget: ChunkBudget | None = None,
    embed_batch: int = EMBED_BATCH,
) -> FeatureSyncResult:
    """Chunk, embed and write one piece of `plan_pieces`. Its documents already in step with the
    mart (another try, or another run, synced them) are skipped; per-document failures are
    listed in the result, not raised."""
    began = time.monotonic()
    embedder = embedder or Embedder.from_settings(settings)
    budget = budget or ChunkBudget(max_tokens=embedder.max_seq_length)
    with _autocommit(settings, conn) as db, _sync_lock(db, shared=True):
        target = _target(db, embedder)
        if target.version_id != piece["index_version"]:
            raise RuntimeError(
                f"piece planned for index {piece['index_version']}, but the embedding model and "
                f"chunker now name {target.version_id}: plan again"
            )
        marts = mart_entries(db, piece["documents"])
        states = vectors.document_states(db, target, piece["documents"])
        todo = [d for d in piece["documents"] if d in marts and _differs(states.get(d), marts[d])]
        result = FeatureSyncResult(target.version_id, target.model_name, target.dimension)
        result.documents_seen = len(piece["documents"])
        for batch in _batches(todo, DOCUMENT_BATCH):
            _sync_batch(db, target, embedder, budget, batch, marts, embed_batch, result)
    result.seconds = round(time.monotonic() - began, 3)
    log.info("feature sync piece: %s", json.dumps(result.as_dict()))
    return result


def finish_sync(
    settings: Settings,
    pieces: Sequence[dict],
    *,
    conn: psycopg.Connection | None = None,
    embedder: TextEmbedder | None = None,
) -> FeatureSyncResult:
    """The pieces' results (`sync_piece(...).as_dict()`) added up, after forgetting documents gone
    from the mart and, for a new version, building its search indexes and activating it (not
    when a document failed and another version serves)."""
    began = time.monotonic()
    embedder = embedder or Embedder.from_settings(settings)
    with _autocommit(settings, conn) as db, _sync_lock(db):
        changes = _changes(db, embedder)
        result = FeatureSyncResult(
            changes.target.version_id, changes.target.model_name, changes.target.dimension
        )
        result.documents_seen = len(changes.marts)
        for piece in pieces:
            _add_piece(result, piece)
        _finish(db, changes, result, settings.index_build_memory_mb)
    result.seconds = round(time.monotonic() - began, 3) + sum(p["seconds"] for p in pieces)
    log.info("feature sync: %s", json.dumps(result.as_dict()))
    return result


COUNTS = (
    "documents_changed",
    "chunks_embedded",
    "chunks_written",
    "chunks_deleted",
    "chunks_updated",
)


def _add_piece(result: FeatureSyncResult, piece: dict) -> None:
    if piece["index_version"] != result.index_version:
        raise RuntimeError(
            f"a piece synced index {piece['index_version']}, not {result.index_version}"
        )
    for name in COUNTS:
        setattr(result, name, getattr(result, name) + piece[name])
    result.failures += piece["failures"]
    for stage, seconds in piece["timings"].items():
        result.timed(stage, seconds)


@dataclass
class _Changes:
    """What a sync has to do: the target version, the mart, documents to sync and to forget."""

    target: IndexVersion
    marts: dict[str, MartEntry]
    todo: list[str]
    gone: list[str]


def _differs(state: DocumentState | None, mart: MartEntry) -> bool:
    return state is None or (state.clean_hash, state.meta_hash) != (mart.clean_hash, mart.meta_hash)


def _target(conn: psycopg.Connection, embedder: TextEmbedder) -> IndexVersion:
    """The index version of the embedding model and chunker (created as `building` if new)."""
    return vectors.ensure_index_version(
        conn, embedder.model_name, embedder.dimension, CHUNKER_VERSION
    )


def _changes(conn: psycopg.Connection, embedder: TextEmbedder) -> _Changes:
    require_marts(conn)
    target = _target(conn, embedder)
    marts = mart_entries(conn)
    states = vectors.document_states(conn, target)
    todo = [m.document_id for m in marts.values() if _differs(states.get(m.document_id), m)]
    gone = sorted(set(states) - set(marts))
    if states and not marts:
        # an empty mart is far likelier a broken build than an author who deleted everything
        raise RuntimeError(
            f"{MARTS_TABLE} is empty but index {target.version_id} holds {len(states)} "
            "documents: refusing to delete them all (check the warehouse build)"
        )
    log.info(
        "index %s (%s, %d-d, %s): %d documents, %d to sync, %d removed",
        target.version_id,
        target.model_name,
        target.dimension,
        target.status,
        len(marts),
        len(todo),
        len(gone),
    )
    return _Changes(target, marts, todo, gone)


def _sync(
    conn: psycopg.Connection,
    embedder: TextEmbedder,
    budget: ChunkBudget,
    document_batch: int,
    embed_batch: int,
    progress: bool | None,
    build_memory_mb: int,
) -> FeatureSyncResult:
    changes = _changes(conn, embedder)
    target, marts, todo = changes.target, changes.marts, changes.todo
    result = FeatureSyncResult(target.version_id, target.model_name, target.dimension)
    result.documents_seen = len(marts)
    if todo:
        bar = tqdm(total=len(todo), desc="features", unit="doc", disable=_no_bar(progress))
        with bar:
            for batch in _batches(_in_write_order(todo, marts), document_batch):
                _sync_batch(conn, target, embedder, budget, batch, marts, embed_batch, result)
                bar.update(len(batch))
    _finish(conn, changes, result, build_memory_mb)
    return result


def _finish(
    conn: psycopg.Connection, changes: _Changes, result: FeatureSyncResult, build_memory_mb: int
) -> None:
    """Forget documents gone from the mart; index, analyze and activate a new version."""
    target, gone = changes.target, changes.gone
    active = vectors.active_version(conn)
    if gone:
        with conn.transaction():
            result.chunks_deleted += vectors.forget_documents(conn, target, gone)
        result.documents_deleted = len(gone)

    if target.status != "active":
        # a new version: build its search indexes over the loaded rows and give the planner
        # statistics before anyone reads it (an active version's are kept up by autovacuum
        # and `maintain_index`)
        began = time.perf_counter()
        vectors.ensure_search_indexes(conn, target, build_memory_mb)
        conn.execute(sql.SQL("analyze {table}").format(table=target.table))
        result.timed("index", time.perf_counter() - began)
    if target.status != "active":
        if result.failures and active is not None:
            log.warning(
                "index %s not activated: %d documents failed; %s stays active",
                target.version_id,
                len(result.failures),
                active.version_id,
            )
        else:
            vectors.activate(conn, target)
            result.activated = True
            log.info(
                "index %s activated%s",
                target.version_id,
                f" (retired {active.version_id})" if active else "",
            )


def _sync_batch(
    conn: psycopg.Connection,
    target: IndexVersion,
    embedder: TextEmbedder,
    budget: ChunkBudget,
    document_ids: Sequence[str],
    marts: dict[str, MartEntry],
    embed_batch: int,
    result: FeatureSyncResult,
) -> None:
    """Chunk, embed what is new, and write one batch of documents in one transaction."""
    began = time.perf_counter()
    docs = mart_documents(conn, document_ids, result.failures)
    chunks: dict[str, list[Chunk]] = {}
    for doc in docs:
        try:
            chunks[doc.document_id] = chunk_document(
                doc, embedder.tokenizer, budget, model_name=embedder.model_name
            )
        except Exception as exc:  # one bad document must not stop the others
            result.failures.append(f"chunking failed for {doc.document_id}: {exc!r}")
            log.exception("chunking failed for %s", doc.document_id)
    if not chunks:
        return
    existing = vectors.existing_chunk_ids(conn, target, list(chunks))
    fresh: dict[str, Chunk] = {}
    for doc_chunks in chunks.values():
        for c in doc_chunks:
            if c.chunk_id not in existing:
                fresh.setdefault(c.chunk_id, c)
    new = list(fresh.values())
    result.timed("chunk", time.perf_counter() - began)
    began = time.perf_counter()
    embeddings = (
        embedder.encode([c.embedding_text for c in new], batch_size=embed_batch, progress=False)
        if new
        else None
    )
    by_id = {d.document_id: d for d in docs}
    rows = (
        [_row(by_id[c.document_id], c, target.model_name, embeddings[i]) for i, c in enumerate(new)]
        if embeddings is not None
        else []
    )
    rows.sort(key=lambda r: (marts[r.document_id].write_order, r.chunk_index))
    kept = [c for cs in chunks.values() for c in cs if c.chunk_id in existing]
    result.timed("embed", time.perf_counter() - began)

    began = time.perf_counter()
    with conn.transaction():
        result.chunks_written += vectors.write_chunks(conn, target, rows)
        result.chunks_deleted += vectors.delete_chunks(
            conn, target, list(chunks), keep=[c.chunk_id for cs in chunks.values() for c in cs]
        )
        result.chunks_updated += _refresh_kept(conn, target, kept, by_id)
        vectors.save_document_states(
            conn,
            target,
            [
                DocumentState(d, marts[d].clean_hash, marts[d].meta_hash, len(cs))
                for d, cs in chunks.items()
            ],
        )
    result.timed("write", time.perf_counter() - began)
    result.chunks_embedded += len(new)
    result.documents_changed += len(chunks)


def _row(doc: MartDocument, chunk: Chunk, model_name: str, embedding: np.ndarray) -> ChunkRow:
    return ChunkRow(
        chunk_id=chunk.chunk_id,
        document_id=doc.document_id,
        chunk_index=chunk.chunk_index,
        author=doc.author,
        platform=doc.platform,
        document_kind=doc.document_kind,
        published_at=doc.published_at,
        url=doc.url,
        title=doc.title,
        section=chunk.section,
        content=chunk.content,
        token_count=chunk.token_count,
        content_hash=chunk.content_hash,
        model_name=model_name,
        embedding=embedding,
    )


REFRESH_KEPT = """
update {table} t set chunk_index = %(chunk_index)s, author = %(author)s, platform = %(platform)s,
    document_kind = %(document_kind)s, published_at = %(published_at)s, url = %(url)s,
    title = %(title)s
where chunk_id = %(chunk_id)s
  and (t.chunk_index, t.author, t.platform, t.document_kind, t.published_at, t.url, t.title)
      is distinct from (%(chunk_index)s, %(author)s, %(platform)s, %(document_kind)s,
                        %(published_at)s::timestamptz, %(url)s, %(title)s)
"""


def _refresh_kept(
    conn: psycopg.Connection,
    target: IndexVersion,
    kept: Sequence[Chunk],
    docs: dict[str, MartDocument],
) -> int:
    """Give kept chunks their new position and document metadata; the rows changed."""
    if not kept:
        return 0
    params = [
        {
            "chunk_id": c.chunk_id,
            "chunk_index": c.chunk_index,
            "author": docs[c.document_id].author,
            "platform": docs[c.document_id].platform,
            "document_kind": docs[c.document_id].document_kind,
            "published_at": docs[c.document_id].published_at,
            "url": docs[c.document_id].url,
            "title": docs[c.document_id].title,
        }
        for c in kept
    ]
    statement = sql.SQL(REFRESH_KEPT).format(table=target.table)
    changed = 0
    with conn.cursor() as cur:
        cur.executemany(statement, params, returning=False)
        changed = max(cur.rowcount, 0)
    return changed


# --- maintenance ------------------------------------------------------------------------------


def maintain_index(
    settings: Settings, *, conn: psycopg.Connection | None = None, keep_retired: int = 1
) -> dict:
    """ANALYZE the active index, make sure its search indexes exist, drop retired versions beyond
    `keep_retired`, and report row count and sizes in bytes. Never VACUUMs (autovacuum does)."""
    with _autocommit(settings, conn) as db, _sync_lock(db):
        vectors.ensure_vector_schema(db)
        active = vectors.active_version(db)
        if active is None:
            return {"active_version": None, "message": "no active index version yet"}
        vectors.ensure_search_indexes(db, active, settings.index_build_memory_mb)
        db.execute(sql.SQL("analyze {table}").format(table=active.table))
        dropped = vectors.drop_retired_versions(db, keep=keep_retired)
        sizes = vectors.index_sizes(db, active)
        report = {
            "active_version": active.as_dict(),
            "rows": vectors.count_chunks(db, active),
            "sizes_bytes": sizes,
            "total_bytes": sum(sizes.values()),
            "dropped_versions": dropped,
            "versions": [v.as_dict() for v in vectors.list_versions(db)],
        }
    log.info("index maintenance: %s", json.dumps(report, default=str))
    return report


# --- plumbing ---------------------------------------------------------------------------------


@contextmanager
def _autocommit(
    settings: Settings, conn: psycopg.Connection | None
) -> Iterator[psycopg.Connection]:
    """The caller's connection switched to autocommit for the duration, or an own connection."""
    if conn is None:
        from twin.store.warehouse import warehouse_connection

        with warehouse_connection(settings, autocommit=True) as own:
            yield own
        return
    previous = conn.autocommit
    if not previous:
        conn.commit()  # autocommit can only change outside a transaction
        conn.autocommit = True
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.autocommit = previous


@contextmanager
def _sync_lock(conn: psycopg.Connection, shared: bool = False) -> Iterator[None]:
    """A session advisory lock: a second concurrent sync fails fast instead of racing. Pieces of
    one fanned-out sync (disjoint documents, one transaction per batch) share it."""
    kind = "_shared" if shared else ""
    taken = conn.execute(f"select pg_try_advisory_lock{kind}(%s)", (LOCK_KEY,)).fetchone()[0]
    if not taken:
        raise RuntimeError("another feature sync or index maintenance is running")
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute(f"select pg_advisory_unlock{kind}(%s)", (LOCK_KEY,))


def _in_write_order(document_ids: Sequence[str], marts: dict[str, MartEntry]) -> list[str]:
    """`document_ids` by author, platform and id: a version built in one pass keeps each
    author's chunks of a platform together on disk, so a search filtered to them reads a few
    neighbouring pages rather than a page per chunk (`benchmarks/retrieval.py`: the exact
    path over up to 10,000 filtered rows at a million chunks)."""
    return sorted(document_ids, key=lambda d: marts[d].write_order)


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), max(1, size)):
        yield list(items[start : start + size])


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's `disable`: None hides the bar when output is not a terminal (task logs)."""
    return None if progress is None else not progress
