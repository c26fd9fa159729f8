"""An author's evaluation question set, built from their own writing and versioned in `ml`.

Each document of the author's marts gives its sections (`split_sections`); the sections that pass
the sample filters (length, boilerplate, personal data, language) are candidates, and
`per_document` of them per document (a stable hash picks which) go to the chosen generator
(offline templates, the local model or an endpoint: the same generators and cache as the
instruction data, task `question`), which writes one question each section answers. The
document is the question's label. Hand-written labelled sets that installed packages offer for
the same author (`twin.datasets.labelled`, entry point group `twin.questions`) are added, their
keys resolved against the marts; none is required.

A set's id is the content hash of its questions and configuration: a rebuild with nothing new
writes nothing, and readers (the retrieval evaluation, shadow replay, decontamination of training
samples, a first deployment's questions) take the author's newest set.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.datasets import filters
from twin.datasets.cache import cached_generate
from twin.datasets.generators import InstructionGenerator, SectionPrompt, generator_label
from twin.datasets.labelled import hand_written_sets, resolve_set
from twin.datasets.sources import MartDocument, Section, read_documents, split_sections
from twin.domain.questions import (
    MAX_GENERATED_KEY,
    EvalQuestion,
    QuestionSetSnapshot,
    QuestionSetVersion,
)
from twin.domain.samples import content_digest
from twin.settings import Settings
from twin.store import questions as store
from twin.store.warehouse import warehouse_connection

log = logging.getLogger(__name__)

QUESTION_BUILD = "1"
PER_DOCUMENT = 1
MIN_SECTION_CHARS = 200
MAX_SECTION_CHARS = 4000
MIN_QUESTION_CHARS = 10
MAX_QUESTION_CHARS = 300


@dataclass
class QuestionSetResult:
    """What one build of an author's question set did (`created` False: it existed)."""

    version: str = ""
    author: str = ""
    created: bool = False
    rows_written: int = 0
    generator: str = ""
    generator_calls: int = 0
    questions: int = 0
    generated: int = 0
    hand_written: int = 0
    documents: int = 0
    documents_covered: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    unresolved_labels: list[str] = field(default_factory=list)
    documents_generated: list[str] = field(default_factory=list)
    cache_rows_written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_question_set(
    settings: Settings,
    author: str,
    generator: InstructionGenerator,
    *,
    docs: list[MartDocument] | None = None,
    per_document: int = PER_DOCUMENT,
    languages: tuple[str, ...] = ("en",),
    max_generated: int | None = None,
) -> tuple[QuestionSetResult, QuestionSetSnapshot]:
    """Build (or find) the author's question set from their marts; see the module docstring.
    `max_generated` caps the generated questions (documents in id order; None: every document).
    Raises LookupError naming the author when the marts hold none of their documents."""
    started = time.perf_counter()
    if docs is None:
        with warehouse_connection(settings) as conn:
            docs = read_documents(conn, author)
    if not docs:
        raise LookupError(f"question set: marts.documents holds no document of author {author!r}")
    result = QuestionSetResult(author=author, generator=generator_label(generator))
    result.documents = len(docs)
    drops = filters.DropCounter()
    calls_before = generator.usage.calls
    generated = _generated(
        settings, generator, docs, per_document, languages, drops, result, max_generated
    )
    written_by_hand = _hand_written(settings, author, result)
    questions = filters.drop_exact_duplicates(
        [*generated, *written_by_hand], lambda q: q.question, drops
    )
    result.generator_calls = generator.usage.calls - calls_before
    result.drop_reasons = drops.as_dict()
    result.generated = sum(1 for q in questions if not q.source.startswith("hand-written:"))
    result.hand_written = len(questions) - result.generated
    result.questions = len(questions)
    covered = sorted({d for q in questions for d in q.document_ids})
    result.documents_covered = len(covered)
    config = {
        "generator": generator.name,
        "generator_config": generator.config,
        "build": QUESTION_BUILD,
        "per_document": per_document,
        "languages": list(languages),
        MAX_GENERATED_KEY: max_generated,
    }
    result.version = content_digest(
        {"config": config, "questions": sorted(q.question_id for q in questions)}
    )
    version = QuestionSetVersion(
        version=result.version,
        author=author,
        created_at=datetime.now(UTC),
        generator_config=config,
        counts={
            "questions": result.questions,
            "generated": result.generated,
            "hand_written": result.hand_written,
            "documents": result.documents,
            "documents_covered": result.documents_covered,
        },
        source_document_ids=tuple(covered),
    )
    result.rows_written = store.write_question_set(settings, version, questions)
    result.created = result.rows_written > 0
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "question set %s of %s: %s, %d questions (%d generated, %d hand-written) covering %d of "
        "%d documents, drops %s",
        result.version[:16],
        author,
        "new version" if result.created else "unchanged",
        result.questions,
        result.generated,
        result.hand_written,
        result.documents_covered,
        result.documents,
        result.drop_reasons,
    )
    snapshot = QuestionSetSnapshot(version=version, questions=tuple(questions))
    return result, snapshot


def _chosen_sections(
    doc: MartDocument, per_document: int, languages: tuple[str, ...], drops: filters.DropCounter
) -> list[Section]:
    """Up to `per_document` sections of the document that pass the filters (a stable hash of
    each section picks which)."""
    usable = []
    for section in split_sections(doc):
        reason = (
            filters.length_reason(section.text, MIN_SECTION_CHARS, MAX_SECTION_CHARS)
            or filters.boilerplate_reason(section.text)
            or ("pii" if filters.find_pii(section.text) else None)
            or filters.language_reason(section.text, languages)
        )
        if reason is None:
            usable.append(section)
    if not usable:
        drops.drop("question_no_usable_section")
    ranked = sorted(usable, key=lambda s: hashlib.sha256(s.section_id.encode()).hexdigest())
    return ranked[:per_document]


def _generated(
    settings: Settings,
    generator: InstructionGenerator,
    docs: list[MartDocument],
    per_document: int,
    languages: tuple[str, ...],
    drops: filters.DropCounter,
    result: QuestionSetResult,
    max_generated: int | None = None,
) -> list[EvalQuestion]:
    chosen = [
        (doc, section)
        for doc in sorted(docs, key=lambda d: d.document_id)
        for section in _chosen_sections(doc, per_document, languages, drops)
    ]
    if max_generated is not None:
        chosen = chosen[:max_generated]
    requests = [
        (
            doc,
            SectionPrompt(
                s.section_id, s.platform, s.document_kind, s.title, s.heading_path, s.text
            ),
        )
        for doc, s in chosen
    ]
    out = cached_generate(settings, generator, "question", requests, generator.questions, result)
    label = generator_label(generator)
    questions = []
    for doc, section in chosen:
        item = out[section.section_id]
        if item.text is None:
            drops.drop(item.reason or "generator_no_output")
            continue
        text = " ".join(item.text.split())
        reason = filters.length_reason(
            text, MIN_QUESTION_CHARS, MAX_QUESTION_CHARS, "question"
        ) or ("pii" if filters.find_pii(text) else None)
        if reason:
            drops.drop(reason)
            continue
        questions.append(
            EvalQuestion(
                question_id=content_digest(
                    ["question", doc.document_id, section.path, text, label]
                )[:24],
                question=text,
                document_ids=(doc.document_id,),
                section=section.path,
                platform=doc.platform,
                source=label,
            )
        )
    return questions


def _hand_written(settings: Settings, author: str, result: QuestionSetResult) -> list[EvalQuestion]:
    """The hand-written sets installed for `author`, their labels resolved against the marts."""
    sets = hand_written_sets(author)
    if not sets:
        return []
    questions = []
    with warehouse_connection(settings) as conn:
        for name, question_set in sorted(sets.items()):
            ready, unresolved = resolve_set(conn, question_set)
            result.unresolved_labels += [f"{name}:{key}" for key in unresolved]
            for q in ready:
                ids = tuple(q.relevant_ids)
                questions.append(
                    EvalQuestion(
                        question_id=content_digest(["hand-written", name, q.id, q.question, ids])[
                            :24
                        ],
                        question=q.question,
                        document_ids=ids,
                        source=f"hand-written:{name}",
                        tags=tuple(q.tags),
                        reference_time=question_set.now,
                    )
                )
    return questions


def author_questions(settings: Settings, author: str) -> QuestionSetSnapshot | None:
    """The author's newest question set (None when the datasets stage has built none)."""
    return store.latest_question_set(settings, author)
