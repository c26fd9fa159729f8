"""Retrieval evaluation on a labelled question set: recall@5, recall@10, MRR and nDCG@10.

By default the set is the author's own, versioned question set in `ml` (built by the datasets
stage from their marts: each question labelled with the documents that answer it, see
`twin.datasets.questions`). A hand-written labelled file (YAML or JSON, keys `platform/slug`) can
be evaluated instead: its keys are resolved against `marts.documents` (`twin.datasets.labelled`);
keys that resolve to nothing (a page the crawl missed, or a near-duplicate the marts dropped in
favour of its twin) are left out of that question's relevant set and reported; a question with no
relevant document left is skipped and counted.

Metrics are computed over the ranked passages (chunks) a search returns: a document counts once,
at the rank of its first chunk. recall@k = relevant documents among the first k passages / all
relevant documents; MRR = 1 / rank of the first relevant passage; nDCG@10 with binary gains.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from math import log2
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.datasets.labelled import (
    LabelledQuestion,
    QuestionSet,
    load_questions,
    resolve_keys,
    resolve_questions,
    resolve_set,
    url_names_key,
)

if TYPE_CHECKING:
    from twin.domain.questions import QuestionSetSnapshot
    from twin.rag.retrieve import Retriever, SearchMode
    from twin.settings import Settings

__all__ = [
    "LabelledQuestion",
    "QuestionSet",
    "load_questions",
    "resolve_keys",
    "resolve_questions",
    "url_names_key",
]


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
    # group name -> the rows over that group's questions only (see `question_groups`)
    groups: dict[str, list[EvalRow]] = field(default_factory=dict)

    def row(self, name: str) -> EvalRow:
        """The row of configuration `name`; KeyError if it was not evaluated."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def render_table(self) -> str:
        """A fixed-width text table, one line per configuration; then one block per group."""
        header = (
            f"{'config':<15} {'recall@5':>8} {'recall@10':>9} {'MRR':>6} {'nDCG@10':>7} "
            f"{'questions':>9} {'p50 ms':>7}"
        )
        lines = [header, "-" * len(header)]
        for name, rows in [("", self.rows), *self.groups.items()]:
            if name:
                lines.append(f"[{name}]")
            for r in rows:
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
            "groups": {name: [vars(r) for r in rows] for name, rows in self.groups.items()},
            "unresolved": self.unresolved,
            "skipped": self.skipped,
        }

    def group(self, name: str, config: str) -> EvalRow:
        """Configuration `config`'s row over group `name`'s questions; KeyError if absent."""
        for row in self.groups[name]:
            if row.name == config:
                return row
        raise KeyError(f"{name}: {config}")


# A question's set (the tag `hand-written:<set>` a stored question carries) and its split: a
# labelled set may mark the questions settings are tuned on (`dev`) and those only scored (`test`).
SET_TAG_PREFIX = "hand-written:"
SPLIT_TAGS = ("dev", "test")


def question_groups(questions: Sequence[LabelledQuestion]) -> dict[str, list[str]]:
    """Question ids per group worth its own rows: each hand-written set of a mixed question set,
    and each split (`dev`, `test`) within a set or within a single file. Empty when no question
    carries such a tag."""
    groups: dict[str, list[str]] = {}
    for q in questions:
        sets = [t for t in q.tags if t.startswith(SET_TAG_PREFIX)]
        base = sets[0].removeprefix(SET_TAG_PREFIX) if sets else ""
        if base:
            groups.setdefault(base, []).append(q.id)
        for split in SPLIT_TAGS:
            if split in q.tags:
                groups.setdefault(f"{base}/{split}" if base else split, []).append(q.id)
    return groups


def group_rows(table: EvalTable, groups: dict[str, list[str]]) -> dict[str, list[EvalRow]]:
    """The table's configurations scored again over each group's questions (from its
    per-question results, nothing is searched twice)."""
    out: dict[str, list[EvalRow]] = {}
    for name, ids in groups.items():
        wanted = set(ids)
        out[name] = [
            _mean_row(config, [r for r in results if r.question_id in wanted])
            for config, results in table.per_question.items()
        ]
    return out


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
    # Every question's vector from a few batched encodes up front (the retriever keeps them),
    # not from one encode of a single text per question inside the first configuration's loop.
    from twin.rag.retrieve import QUERY_CACHE_SIZE

    texts = [retriever.parse(q.question, now=q.now or now).text for q in usable]
    if texts:
        retriever.embed(texts[:QUERY_CACHE_SIZE])
    for config in configs:
        results: list[QuestionResult] = []
        for q in usable:
            start = time.perf_counter()
            passages = retriever.search(
                q.question,
                k,
                mode=config.mode,
                rerank=config.rerank,
                expand=config.expand,
                now=q.now or now,
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
    table.groups = group_rows(table, question_groups(usable))
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
    ready, unresolved = resolve_set(retriever.conn, question_set)
    table = evaluate_retrieval(retriever, ready, configs=configs, now=question_set.now)
    table.unresolved = unresolved
    table.skipped = sorted({q.id for q in question_set.questions} - {q.id for q in ready})
    return table


def stored_questions(snapshot: QuestionSetSnapshot) -> list[LabelledQuestion]:
    """An author's stored question set as labelled questions (labels are document ids)."""
    return [
        LabelledQuestion(
            id=q.question_id,
            question=q.question,
            relevant=list(q.document_ids),
            relevant_ids=list(q.document_ids),
            tags=[*q.tags, q.source.partition("@")[0]],
            now=q.reference_time,
        )
        for q in snapshot.questions
    ]


def run_retrieval_eval(
    settings: Settings, *, path: Path | None = None, author: str | None = None
) -> dict[str, Any]:
    """Evaluate the live `vectors.chunks` on the author's question set (`author`, default the
    configured one: its newest version in `ml`), or on the labelled file at `path`.

    The result holds `rows` (one dict per configuration), `table` (rendered text), `questions`
    (how many were scored), `unresolved` (labels not found in marts.documents), `skipped` and
    `labelled_set` (the file, or `ml:<question set version>`).
    """
    from twin.rag.retrieve import open_retriever

    if path is not None:
        question_set = load_questions(path)
        with open_retriever(settings) as retriever:
            table = evaluate_labelled_set(retriever, question_set)
        origin = str(path)
    else:
        from twin.store.questions import latest_question_set

        who = author or settings.author
        snapshot = latest_question_set(settings, who)
        if snapshot is None or not snapshot.questions:
            raise LookupError(
                f"no evaluation question set of author {who!r} in ml.question_sets: run "
                "twin_datasets first (it builds the set from the author's marts)"
            )
        questions = stored_questions(snapshot)
        with open_retriever(settings) as retriever:
            ready, gone = _still_in_marts(retriever.conn, questions)
            table = evaluate_retrieval(retriever, ready)
        table.unresolved = gone
        table.skipped = sorted({q.id for q in questions} - {q.id for q in ready})
        origin = f"ml:{snapshot.version.version}"
    return {
        **table.to_dict(),
        "table": table.render_table(),
        "questions": table.rows[0].questions if table.rows else 0,
        "labelled_set": origin,
    }


def _still_in_marts(
    conn: Any, questions: Sequence[LabelledQuestion]
) -> tuple[list[LabelledQuestion], list[str]]:
    """The questions with their labels limited to documents the marts still hold (a question
    left with none is dropped), and the labels that are gone."""
    wanted = sorted({d for q in questions for d in q.relevant_ids})
    present = {
        r[0]
        for r in conn.execute(
            "select document_id from marts.documents where document_id = any(%s)", (wanted,)
        ).fetchall()
    }
    ready = []
    for q in questions:
        ids = [d for d in q.relevant_ids if d in present]
        if ids:
            ready.append(q.model_copy(update={"relevant_ids": ids}))
    return ready, sorted(set(wanted) - present)


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
