"""What a search returns: passages with their sources and scores, and a trace of the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from twin.rag.query import ParsedQuery


class TextEncoder(Protocol):
    """What retrieval needs from an embedder: texts in, one normalised float32 row per text out."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved chunk with its source and how it was found.

    `score` is the final ordering score (RRF for hybrid, cosine similarity for dense, ts_rank_cd
    for full-text, the reranker's score after reranking); `dense_rank` / `text_rank` are its
    1-based positions in the candidate lists (None when that search did not return it) and
    `similarity` its cosine similarity to the question.
    """

    chunk_id: str
    document_id: str
    url: str
    title: str
    platform: str
    document_kind: str
    published_at: datetime | None
    content: str
    section: str | None = None
    score: float = 0.0
    dense_rank: int | None = None
    text_rank: int | None = None
    similarity: float | None = None
    content_hash: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (no embedding; dates as ISO strings)."""
        out = {k: v for k, v in asdict(self).items() if k != "embedding"}
        out["published_at"] = self.published_at.isoformat() if self.published_at else None
        return out


@dataclass
class SearchTrace:
    """What the last search did: the parsed query, candidate counts per stage, timings in ms."""

    mode: str = "hybrid"
    query: ParsedQuery | None = None
    variants: list[str] = field(default_factory=list)
    dense_path: str | None = None  # "hnsw" or "exact" (see Retriever.dense_search)
    dense_candidates: int = 0
    text_candidates: int = 0
    fused: int = 0
    after_dedupe: int = 0
    returned: int = 0
    reranker: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def passage_from_row(columns: Sequence[str], row: Sequence[Any], **extra: Any) -> Passage:
    """A `Passage` from a chunk row selected as `columns` (+ scores in `extra`)."""
    values = dict(zip(columns, row, strict=False))
    embedding = values.pop("embedding")
    if embedding is not None:
        to_numpy = getattr(embedding, "to_numpy", None)  # pgvector's Vector type
        embedding = np.asarray(to_numpy() if to_numpy else embedding, dtype=np.float32)
    for key in ("score", "similarity"):
        if key in extra:
            extra[key] = float(extra[key])
    return Passage(**values, embedding=embedding, **extra)
