"""Retrieval evaluation on a labelled question set: recall@5, recall@10, MRR and nDCG@10.

The labelled set (`eval/sample_author_questions.yaml`) names relevant documents by a stable key,
`platform/slug` (the sample author's content keys), because a document's id is derived from the
canonical URL the crawl found (`document_id = sha256(canonical url)[:32]`), which depends on the
server's address. At evaluation time each key is resolved against `marts.documents`:

- the row's `platform` must equal the key's platform, and
- one segment of the row's URL path must name the slug: the slug itself (`/blog/<slug>/`,
  `/substack/p/<slug>`), `<slug>.git` (a repository), `<slug>-<12 hex>` (a Medium story id) or
  `<slug>-<author handle>` (a LinkedIn article); a LinkedIn post has no slug in its URL, so the
  set's `url_aliases` name a string its URL contains instead (the post's share id).

Keys that resolve to nothing (a page the crawl missed, or a near-duplicate the marts dropped in
favour of its twin) are left out of that question's relevant set and reported; a question with no
relevant document left is skipped and counted.

Metrics are computed over the ranked passages (chunks) a search returns: a document counts once,
at the rank of its first chunk. recall@k = relevant documents among the first k passages / all
relevant documents; MRR = 1 / rank of the first relevant passage; nDCG@10 with binary gains.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from math import log2
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import psycopg

    from twin.rag.retrieve import Retriever, SearchMode
    from twin.settings import Settings

EVAL_DIR = Path(__file__).resolve().parent / "eval"
SAMPLE_QUESTIONS = EVAL_DIR / "sample_author_questions.yaml"
AUTHOR_HANDLE = "ada-lindqvist"


class LabelledQuestion(BaseModel):
    """One evaluation question and the documents that answer it."""

    id: str
    question: str
    relevant: list[str] = Field(description="platform/slug keys of the answering documents")
    tags: list[str] = Field(default_factory=list)
    relevant_ids: list[str] = Field(default_factory=list, description="resolved document ids")


class QuestionSet(BaseModel):
    """A labelled set: whose writing, the reference time for relative dates, the questions."""

    author: str
    now: datetime = Field(description="'last year' and similar phrases are relative to this")
    questions: list[LabelledQuestion]
    url_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="platform/slug -> a string the document's URL contains, for documents whose "
        "URL does not name their slug (LinkedIn posts: the share id)",
    )


def load_questions(path: Path = SAMPLE_QUESTIONS) -> QuestionSet:
    """The labelled set at `path` (YAML or JSON), validated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    qs = QuestionSet.model_validate(data)
    if qs.now.tzinfo is None:
        qs.now = qs.now.replace(tzinfo=UTC)
    ids = [q.id for q in qs.questions]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: question ids are not unique")
    return qs


# --- resolving labels -------------------------------------------------------------------------


def url_names_key(
    platform: str, slug: str, url: str, *, handle: str = AUTHOR_HANDLE, alias: str | None = None
) -> bool:
    """Whether `url` is the address of the document `platform/slug` (see the module docstring)."""
    path = unquote(urlsplit(url).path or url)
    escaped = re.escape(slug)
    pattern = re.compile(rf"{escaped}(?:\.git|-[0-9a-f]{{12}}|-{re.escape(handle)})?")
    if any(pattern.fullmatch(segment) for segment in path.split("/") if segment):
        return True
    return bool(alias) and alias in unquote(url)


def resolve_keys(
    conn: psycopg.Connection,
    keys: Iterable[str],
    *,
    author: str | None = None,
    aliases: dict[str, str] | None = None,
) -> dict[str, str]:
    """`platform/slug` -> `marts.documents.document_id` for every key that names one document.

    Raises ValueError when a key matches more than one document (an ambiguous label).
    """
    query = "select document_id, platform, url from marts.documents"
    params: tuple[Any, ...] = ()
    if author:
        query += " where author = %s"
        params = (author,)
    rows = conn.execute(query, params).fetchall()
    resolved: dict[str, str] = {}
    for key in sorted(set(keys)):
        platform, _, slug = key.partition("/")
        matches = sorted(
            doc_id
            for doc_id, p, url in rows
            if p == platform and url_names_key(platform, slug, url, alias=(aliases or {}).get(key))
        )
        if len(matches) > 1:
            raise ValueError(f"label {key} matches {len(matches)} documents: {matches}")
        if matches:
            resolved[key] = matches[0]
    return resolved


def resolve_questions(
    questions: Sequence[LabelledQuestion], resolved: dict[str, str]
) -> tuple[list[LabelledQuestion], list[str]]:
    """Questions with `relevant_ids` filled (those left with none dropped), and unresolved keys."""
    unresolved = sorted({key for q in questions for key in q.relevant if key not in resolved})
    ready = []
    for q in questions:
        ids = [resolved[key] for key in q.relevant if key in resolved]
        if ids:
            ready.append(q.model_copy(update={"relevant_ids": list(dict.fromkeys(ids))}))
    return ready, unresolved


# --- metrics ----------------------------------------------------------------------------------


def first_ranks(ranked_documents: Sequence[str]) -> dict[str, int]:
    """Each document's first 1-based rank in a ranked list of (possibly repeated) document ids."""
    ranks: dict[str, int] = {}
    for rank, doc_id in enumerate(ranked_documents, start=1):
        ranks.setdefault(doc_id, rank)
    return ranks


def recall_at_k(ranked_documents: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of relevant documents found among the first `k` ranked entries."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    found = {doc for doc in ranked_documents[:k] if doc in relevant}
    return len(found) / len(relevant)


def reciprocal_rank(ranked_documents: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / rank of the first relevant entry, 0 when none is relevant."""
    relevant = set(relevant)
    for rank, doc in enumerate(ranked_documents, start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked_documents: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-gain nDCG over the first `k` entries; each document gains once, at its first rank."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    dcg = sum(
        1.0 / log2(rank + 1)
        for doc, rank in first_ranks(ranked_documents[:k]).items()
        if doc in relevant
    )
    ideal = sum(1.0 / log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """One retrieval configuration to score."""

    name: str
    mode: SearchMode
    rerank: bool
    expand: bool = False


CONFIGS: tuple[EvalConfig, ...] = (
    EvalConfig("dense", "dense", rerank=False),
    EvalConfig("fulltext", "fulltext", rerank=False),
    EvalConfig("hybrid", "hybrid", rerank=False),
    EvalConfig("hybrid+rerank", "hybrid", rerank=True),
)


@dataclass
class QuestionResult:
    """How one configuration did on one question."""

    question_id: str
    recall_at_5: float
    recall_at_10: float
    reciprocal_rank: float
    ndcg_at_10: float
    retrieved: list[str]
    latency_ms: float


@dataclass
class EvalRow:
    """Mean metrics of one configuration over the evaluated questions."""

    name: str
    recall_at_5: float
    recall_at_10: float
    mrr: float
    ndcg_at_10: float
    questions: int
    p50_ms: float


@dataclass
class EvalTable:
    """Metrics per configuration, per-question detail, and what could not be evaluated."""

    rows: list[EvalRow]
    per_question: dict[str, list[QuestionResult]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def row(self, name: str) -> EvalRow:
        """The row of configuration `name`; KeyError if it was not evaluated."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def render_table(self) -> str:
        """A fixed-width text table, one line per configuration."""
        header = (
            f"{'config':<15} {'recall@5':>8} {'recall@10':>9} {'MRR':>6} {'nDCG@10':>7} "
            f"{'questions':>9} {'p50 ms':>7}"
        )
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append(
                f"{r.name:<15} {r.recall_at_5:>8.3f} {r.recall_at_10:>9.3f} {r.mrr:>6.3f} "
                f"{r.ndcg_at_10:>7.3f} {r.questions:>9d} {r.p50_ms:>7.1f}"
            )
        if self.skipped or self.unresolved:
            lines.append(
                f"skipped questions: {len(self.skipped)}; unresolved labels: "
                f"{', '.join(self.unresolved) or 'none'}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Rows and what was left out, JSON-ready (per-question detail omitted)."""
        return {
            "rows": [vars(r) for r in self.rows],
            "unresolved": self.unresolved,
            "skipped": self.skipped,
        }


def evaluate_retrieval(
    retriever: Retriever,
    questions: Sequence[LabelledQuestion],
    *,
    configs: Sequence[EvalConfig] = CONFIGS,
    now: datetime | None = None,
    k: int = 10,
) -> EvalTable:
    """Score each configuration on `questions` (their `relevant_ids` must be resolved).

    Every question is searched once per configuration with `k` passages (constraints in the
    question applied as filters, relative dates read against `now`); recall@5 comes from the
    first five of them. Returns the table of means plus per-question results.
    """
    usable = [q for q in questions if q.relevant_ids]
    skipped = [q.id for q in questions if not q.relevant_ids]
    table = EvalTable(rows=[], skipped=skipped)
    for config in configs:
        results: list[QuestionResult] = []
        for q in usable:
            start = time.perf_counter()
            passages = retriever.search(
                q.question, k, mode=config.mode, rerank=config.rerank, expand=config.expand, now=now
            )
            latency = (time.perf_counter() - start) * 1000
            ranked = [p.document_id for p in passages]
            results.append(
                QuestionResult(
                    question_id=q.id,
                    recall_at_5=recall_at_k(ranked, q.relevant_ids, 5),
                    recall_at_10=recall_at_k(ranked, q.relevant_ids, 10),
                    reciprocal_rank=reciprocal_rank(ranked, q.relevant_ids),
                    ndcg_at_10=ndcg_at_k(ranked, q.relevant_ids, 10),
                    retrieved=ranked,
                    latency_ms=latency,
                )
            )
        table.per_question[config.name] = results
        table.rows.append(_mean_row(config.name, results))
    return table


def _mean_row(name: str, results: Sequence[QuestionResult]) -> EvalRow:
    def mean(values: Iterable[float]) -> float:
        values = list(values)
        return sum(values) / len(values) if values else 0.0

    return EvalRow(
        name=name,
        recall_at_5=mean(r.recall_at_5 for r in results),
        recall_at_10=mean(r.recall_at_10 for r in results),
        mrr=mean(r.reciprocal_rank for r in results),
        ndcg_at_10=mean(r.ndcg_at_10 for r in results),
        questions=len(results),
        p50_ms=statistics.median(r.latency_ms for r in results) if results else 0.0,
    )


def evaluate_labelled_set(
    retriever: Retriever,
    question_set: QuestionSet,
    *,
    configs: Sequence[EvalConfig] = CONFIGS,
) -> EvalTable:
    """Resolve `question_set`'s labels against `marts.documents` and evaluate every config."""
    keys = [key for q in question_set.questions for key in q.relevant]
    resolved = resolve_keys(
        retriever.conn, keys, author=question_set.author, aliases=question_set.url_aliases
    )
    ready, unresolved = resolve_questions(question_set.questions, resolved)
    table = evaluate_retrieval(retriever, ready, configs=configs, now=question_set.now)
    table.unresolved = unresolved
    table.skipped = sorted({q.id for q in question_set.questions} - {q.id for q in ready})
    return table


def run_retrieval_eval(settings: Settings, *, path: Path = SAMPLE_QUESTIONS) -> dict[str, Any]:
    """Evaluate the live `vectors.chunks` on a labelled set; returns rows, table text, gaps.

    The result holds `rows` (one dict per configuration), `table` (rendered text), `questions`
    (how many were scored), `unresolved` (labels not found in marts.documents) and `skipped`.
    """
    from twin.rag.retrieve import open_retriever

    question_set = load_questions(path)
    with open_retriever(settings) as retriever:
        table = evaluate_labelled_set(retriever, question_set)
    return {
        **table.to_dict(),
        "table": table.render_table(),
        "questions": table.rows[0].questions if table.rows else 0,
        "labelled_set": str(path),
    }


def search_passages(
    question: str,
    settings: Settings,
    k: int = 5,
    *,
    mode: SearchMode = "hybrid",
    rerank: bool = True,
    expand: bool = False,
) -> list[dict[str, Any]]:
    """The `k` best passages for `question` as JSON-ready dicts, best first.

    Each dict holds chunk_id, document_id, url, title, platform, document_kind, published_at,
    content, section, score, dense_rank, text_rank, similarity and content_hash. Constraints in
    the question ("on LinkedIn", "in 2023") filter the search.
    """
    from twin.rag.retrieve import open_retriever

    with open_retriever(settings) as retriever:
        passages = retriever.search(question, k, mode=mode, rerank=rerank, expand=expand)
        return [p.to_dict() for p in passages]
