"""Embed stale chunks in batches and upsert them; report what changed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from tidy_vectors.stale import Chunk, content_hash

log = logging.getLogger(__name__)

Embedder = Callable[[Sequence[str]], list[list[float]]]

UPSERT = """
INSERT INTO vectors.chunks (chunk_id, document_id, position, content, content_hash, model, embedding)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (chunk_id) DO UPDATE
SET content = excluded.content, content_hash = excluded.content_hash,
    model = excluded.model, embedding = excluded.embedding
WHERE chunks.content_hash IS DISTINCT FROM excluded.content_hash
   OR chunks.model IS DISTINCT FROM excluded.model
"""


@dataclass
class RefreshReport:
    """Counts from one refresh run; a rerun with no changes has embedded == 0."""

    stale: int = 0
    embedded: int = 0
    deleted: int = 0

    def line(self, model: str) -> str:
        """One log line, stable enough to grep."""
        return f"refresh model={model} stale={self.stale} embedded={self.embedded} deleted={self.deleted}"


def batched(items: Iterable[Chunk], size: int) -> Iterator[list[Chunk]]:
    """Split an iterable into lists of at most `size` items."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def refresh(conn, stale: Iterable[Chunk], embed: Embedder, model: str, batch_size: int = 256):
    """Embed and upsert every stale chunk; returns a RefreshReport."""
    report = RefreshReport()
    for batch in batched(stale, batch_size):
        report.stale += len(batch)
        vectors = embed([c.text for c in batch])
        rows = [
            (c.chunk_id, c.document_id, c.position, c.text, content_hash(c.text), model, v)
            for c, v in zip(batch, vectors, strict=True)
        ]
        with conn.transaction():
            conn.cursor().executemany(UPSERT, rows)
        report.embedded += len(rows)
    log.info(report.line(model))
    return report
