"""Decide which chunks need embedding: a hash or model-version mismatch, nothing else."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One chunk of a source document as the source describes it now."""

    document_id: str
    position: int
    text: str

    @property
    def chunk_id(self) -> str:
        """Stable identity of the chunk: document id and position."""
        return f"{self.document_id}:{self.position}"


def normalise(text: str) -> str:
    """NFC-normalise and collapse whitespace so cosmetic edits do not count as changes."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(text: str) -> str:
    """SHA-256 hex digest of the normalised text."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def stale_chunks(
    source: Iterable[Chunk],
    stored: dict[str, tuple[str, str]],
    model: str,
) -> Iterator[Chunk]:
    """Yield source chunks whose stored (hash, model) differs from the current text and model."""
    for chunk in source:
        current = (content_hash(chunk.text), model)
        if stored.get(chunk.chunk_id) != current:
            yield chunk


def orphaned_ids(source_document_ids: set[str], stored_ids: Iterable[str]) -> list[str]:
    """Chunk ids whose document no longer exists in the source listing."""
    return sorted(cid for cid in stored_ids if cid.split(":", 1)[0] not in source_document_ids)
