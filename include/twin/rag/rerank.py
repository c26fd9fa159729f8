"""Fusing rankings, dropping near-duplicates, and reordering the survivors.

- `reciprocal_rank_fusion`: merge ranked lists (dense, full-text, their expansions) by RRF.
- `drop_near_duplicates`: keep one of each group of passages with the same content hash, or from
  the same document with embeddings more similar than a threshold (overlapping chunks).
- `Reranker` is the one interface retrieval calls. `WindowReranker` (the default when retrieval
  has its embedder) re-scores the best fused candidates by the sentence window inside each that
  is closest to the question, with the same bi-encoder that embedded the chunks: a fact stated in
  one or two sentences of a long chunk is diluted in the chunk's single vector but not in its
  window's. `MMRReranker` orders candidates by maximal marginal relevance over their embeddings,
  so five near-identical passages do not crowd out the one that says something else (it lowers
  recall@5 on the sample author's sets, see README). `CrossEncoderReranker` scores (question,
  passage) pairs with a cross-encoder when a model path is configured; no such model ships
  offline, so it is present for deployments that provide one.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Hashable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
from cachetools import LRUCache

if TYPE_CHECKING:
    from twin.rag.passages import Passage, TextEncoder

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RRF_K = 60
DUPLICATE_SIMILARITY = 0.95
MMR_LAMBDA = 0.7
# Sentence-window re-scoring, chosen on the paraphrase set's dev split (README, "Measured"):
# windows of two sentences, the best window's cosine similarity weighted 0.3 against the fused
# score (scaled to the best), over the 20 best fused candidates.
WINDOW_SENTENCES = 2
WINDOW_WEIGHT = 0.3
WINDOW_DEPTH = 20
WINDOW_CACHE_SIZE = 5_000  # chunks whose window vectors a process keeps (about 75 MB at 384-d)
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n+")


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], k: int = RRF_K
) -> list[tuple[K, float]]:
    """Items of all `rankings` with their RRF score, best first.

    Each ranking lists item keys best first; an item scores sum(1 / (k + rank)) over the rankings
    it appears in (rank counted from 1; a repeat within one ranking counts once, at its best rank).
    Ties are broken deterministically: the better best rank, then the earlier ranking it appears
    in, then the key's string form.
    """
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    scores: dict[K, float] = {}
    best: dict[K, tuple[int, int]] = {}
    for list_index, ranking in enumerate(rankings):
        seen: set[K] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
            best[key] = min(best.get(key, (rank, list_index)), (rank, list_index))
    return sorted(scores.items(), key=lambda kv: (-kv[1], *best[kv[0]], str(kv[0])))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def drop_near_duplicates(
    passages: Sequence[Passage], threshold: float = DUPLICATE_SIMILARITY
) -> list[Passage]:
    """`passages` in their order, without later copies of an earlier one.

    A passage is a copy when it has the same content hash (or, lacking hashes, the same text) as
    a kept passage, or comes from the same document with cosine similarity above `threshold`.
    """
    kept: list[Passage] = []
    kept_vectors: list[np.ndarray | None] = []
    hashes: set[str] = set()
    for passage in passages:
        digest = passage.content_hash or passage.content.strip()
        if digest in hashes:
            continue
        vector = None
        if passage.embedding is not None:
            vector = _unit_rows(np.asarray(passage.embedding)[None, :])[0]
            if any(
                other.document_id == passage.document_id
                and other_vector is not None
                and float(vector @ other_vector) > threshold
                for other, other_vector in zip(kept, kept_vectors, strict=True)
            ):
                continue
        hashes.add(digest)
        kept.append(passage)
        kept_vectors.append(vector)
    return kept


def mmr_order(
    query: np.ndarray,
    candidates: np.ndarray,
    k: int,
    *,
    lambda_: float = MMR_LAMBDA,
    relevance: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """Greedy maximal marginal relevance: up to `k` (candidate index, MMR score), in pick order.

    Each step picks the candidate maximising lambda * relevance - (1 - lambda) * (its highest
    cosine similarity to anything already picked). Relevance defaults to cosine similarity with
    `query`; pass `relevance` to use another score (one value per candidate). Ties go to the
    earlier candidate.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda must be within [0, 1], got {lambda_}")
    if len(candidates) == 0 or k <= 0:
        return []
    vectors = _unit_rows(candidates)
    if relevance is None:
        relevance = vectors @ _unit_rows(np.asarray(query)[None, :])[0]
    relevance = np.asarray(relevance, dtype=np.float64)
    pairwise = vectors @ vectors.T
    chosen: list[tuple[int, float]] = []
    redundancy = np.full(len(vectors), -np.inf)
    available = np.ones(len(vectors), dtype=bool)
    for _ in range(min(k, len(vectors))):
        penalty = np.where(np.isinf(redundancy), 0.0, redundancy)
        score = lambda_ * relevance - (1.0 - lambda_) * penalty
        score = np.where(available, score, -np.inf)
        pick = int(np.argmax(score))  # argmax returns the first maximum: ties go to the earlier
        chosen.append((pick, float(score[pick])))
        available[pick] = False
        redundancy = np.maximum(redundancy, pairwise[pick])
    return chosen


class Reranker(Protocol):
    """Reorders retrieval candidates; returns at most `k` passages, best first, scores set."""

    name: str

    def rerank(
        self, question: str, query_vector: np.ndarray | None, passages: Sequence[Passage], k: int
    ) -> list[Passage]: ...


class MMRReranker:
    """Maximal marginal relevance over candidate embeddings (lambda 0.7 by default).

    Relevance blends the candidate's fused retrieval score (scaled to [0, 1] by the best one) with
    its cosine similarity to the question, weighted by `fused_weight`; candidates without an
    embedding keep their order after those with one.
    """

    name = "mmr"

    def __init__(self, lambda_: float = MMR_LAMBDA, *, fused_weight: float = 0.5) -> None:
        if not 0.0 <= fused_weight <= 1.0:
            raise ValueError(f"fused_weight must be within [0, 1], got {fused_weight}")
        self.lambda_ = lambda_
        self.fused_weight = fused_weight

    def rerank(
        self, question: str, query_vector: np.ndarray | None, passages: Sequence[Passage], k: int
    ) -> list[Passage]:
        """The `k` passages MMR picks, in pick order, each with its MMR score as `score`."""
        with_vectors = [p for p in passages if p.embedding is not None]
        without = [p for p in passages if p.embedding is None]
        if not with_vectors or query_vector is None:
            return list(passages)[:k]
        vectors = np.stack([np.asarray(p.embedding, dtype=np.float32) for p in with_vectors])
        similarity = _unit_rows(vectors) @ _unit_rows(np.asarray(query_vector)[None, :])[0]
        fused = np.array([p.score for p in with_vectors], dtype=np.float64)
        top = fused.max() if len(fused) else 0.0
        fused = fused / top if top > 0 else np.zeros_like(fused)
        relevance = self.fused_weight * fused + (1.0 - self.fused_weight) * similarity
        order = mmr_order(query_vector, vectors, k, lambda_=self.lambda_, relevance=relevance)
        picked = [replace(with_vectors[i], score=score) for i, score in order]
        return (picked + without)[:k]


def sentence_windows(text: str, size: int = WINDOW_SENTENCES) -> list[str]:
    """Runs of `size` consecutive sentences of `text` (lines count as sentence breaks), in order;
    text with at most `size` sentences is one window. Fragments of two characters or fewer (list
    markers, stray punctuation) are not sentences."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 2]
    if len(sentences) <= size:
        return [" ".join(sentences) or text]
    return [" ".join(sentences[i : i + size]) for i in range(len(sentences) - size + 1)]


class WindowReranker:
    """Re-scores the best `depth` candidates by their closest sentence window to the question.

    Each candidate's score becomes `weight` x (cosine similarity of its best window of
    `window` sentences to the question) + (1 - `weight`) x (its fused score scaled to the best
    candidate's); candidates beyond `depth` keep their fused order after them. Windows are
    embedded by `encoder`, the model that embedded the chunks and the question, and their
    vectors are cached per process by the chunk's content hash.
    """

    name = "windows"

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        window: int = WINDOW_SENTENCES,
        weight: float = WINDOW_WEIGHT,
        depth: int = WINDOW_DEPTH,
        cache_size: int = WINDOW_CACHE_SIZE,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"window weight must be within [0, 1], got {weight}")
        if window < 1 or depth < 1:
            raise ValueError(f"window ({window}) and depth ({depth}) must be >= 1")
        self.encoder = encoder
        self.window = window
        self.weight = weight
        self.depth = depth
        self._cache: LRUCache[tuple[str, int], np.ndarray] = LRUCache(cache_size)
        self._lock = threading.Lock()

    def window_vectors(self, passages: Sequence[Passage]) -> list[np.ndarray]:
        """Unit vectors of each passage's sentence windows (one array per passage)."""
        keys = [(p.content_hash or p.content, self.window) for p in passages]
        found: dict[tuple[str, int], np.ndarray] = {}
        with self._lock:
            for key in keys:
                if key in self._cache:
                    found[key] = self._cache[key]
        texts = {
            key: sentence_windows(p.content, self.window)
            for key, p in zip(keys, passages, strict=True)
            if key not in found
        }
        if texts:
            flat = [t for windows in texts.values() for t in windows]
            vectors = _unit_rows(np.asarray(self.encoder.encode(flat), dtype=np.float32))
            start = 0
            for key, windows in texts.items():
                found[key] = vectors[start : start + len(windows)]
                start += len(windows)
            with self._lock:
                for key in texts:
                    self._cache[key] = found[key]
        return [found[key] for key in keys]

    def rerank(
        self, question: str, query_vector: np.ndarray | None, passages: Sequence[Passage], k: int
    ) -> list[Passage]:
        """The `k` best passages after re-scoring, best first, the blended score as `score`."""
        if query_vector is None or not passages:
            return list(passages)[:k]
        top, rest = list(passages[: self.depth]), list(passages[self.depth :])
        query = _unit_rows(np.asarray(query_vector)[None, :])[0]
        best = np.array([float((v @ query).max()) for v in self.window_vectors(top)])
        fused = np.array([p.score for p in top], dtype=np.float64)
        scale = fused.max() if fused.max() > 0 else 1.0
        blended = self.weight * best + (1.0 - self.weight) * fused / scale
        order = sorted(range(len(top)), key=lambda i: (-blended[i], i))
        picked = [replace(top[i], score=float(blended[i])) for i in order]
        return (picked + rest)[:k]


class CrossEncoderReranker:
    """Scores each (question, passage) pair with a sentence-transformers cross-encoder.

    The model loads on first use from `model_path` (a local directory; nothing is downloaded).
    Returns the `k` best passages with the model's score as `score`.
    """

    name = "cross-encoder"

    def __init__(
        self, model_path: str | Path, *, batch_size: int = 32, max_length: int = 512
    ) -> None:
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            if not self.model_path.exists():
                raise FileNotFoundError(f"cross-encoder model not found at {self.model_path}")
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(
                str(self.model_path), max_length=self.max_length, device="cpu"
            )
        return self._model

    def rerank(
        self, question: str, query_vector: np.ndarray | None, passages: Sequence[Passage], k: int
    ) -> list[Passage]:
        """The `k` passages the cross-encoder scores highest, best first."""
        if not passages:
            return []
        pairs = [(question, f"{p.title}\n{p.content}") for p in passages]
        scores = self._load().predict(pairs, batch_size=self.batch_size, show_progress_bar=False)
        order = sorted(range(len(passages)), key=lambda i: (-float(scores[i]), i))
        return [replace(passages[i], score=float(scores[i])) for i in order[:k]]


def default_reranker(
    model_path: str | Path | None = None, *, encoder: TextEncoder | None = None
) -> Reranker:
    """A cross-encoder when `model_path` names one (`settings.rerank_model_path`, from
    `TWIN_RERANK_MODEL_PATH`), else sentence windows re-scored by `encoder` (retrieval's own
    embedder), else MMR."""
    if model_path:
        return CrossEncoderReranker(model_path)
    if encoder is not None:
        return WindowReranker(encoder)
    return MMRReranker()
