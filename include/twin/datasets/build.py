"""Build a dataset version from the marts: the author's evaluation question set
(`twin.datasets.questions`) → sections → filters → instructions (cached) → preference pairs
(cached) → splits by document → decontamination (against that question set and the test split) →
version, export, MLflow.

Generation is the only expensive step and is cached per (document `clean_hash`, generator
configuration digest): a run with nothing new calls no generator, and an edited document is the
only one whose sections go to the generator again. A version's id is the content hash of its
samples, their splits and the generator configuration; building a version that exists writes
nothing at all.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.datasets import filters, lineage
from twin.datasets.cache import cached_generate
from twin.datasets.generators import (
    AnswerPrompt,
    InstructionGenerator,
    SectionPrompt,
    build_generator,
    generator_label,
)
from twin.datasets.params import DatasetOptions
from twin.datasets.preference import balance_pair, closing_paragraphs, strip_signoff
from twin.datasets.questions import build_question_set
from twin.datasets.sources import MartDocument, Section, read_documents, split_sections
from twin.domain.samples import (
    DatasetVersion,
    InstructionSample,
    PreferenceSample,
    Split,
    content_digest,
)
from twin.settings import Settings
from twin.store import datasets as store
from twin.store.warehouse import warehouse_connection

log = logging.getLogger(__name__)

BUILD_VERSION = "1"
SPLIT_SALT = "twin-datasets-split-v1"


@dataclass
class BuildResult:
    """What one build did; a run with nothing new has `created` False and zero writes/calls."""

    version: str = ""
    created: bool = False
    rows_written: int = 0
    cache_rows_written: int = 0
    generator: str = ""
    generator_calls: int = 0
    documents: int = 0
    documents_generated: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    drop_reasons: dict[str, int] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    question_set: dict[str, Any] = field(default_factory=dict)
    export_uri: str | None = None
    mlflow_run_id: str | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.created

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


@dataclass(frozen=True)
class _Candidate:
    doc: MartDocument
    section: Section
    split: Split


def split_of(document_id: str, test_share: float) -> Split:
    """The document's split: a hash threshold, so adding documents never moves another one."""
    point = int(hashlib.sha256(f"{SPLIT_SALT}:{document_id}".encode()).hexdigest()[:12], 16)
    return Split.TEST if point / 16**12 < test_share else Split.TRAIN


def build_dataset(
    settings: Settings,
    options: DatasetOptions,
    *,
    generator: InstructionGenerator | None = None,
    log_mlflow: bool = True,
) -> BuildResult:
    """Build (or find) the dataset version of the author's current marts; see the module doc."""
    started = time.perf_counter()
    store.ensure_ml_schema(settings.require("warehouse_dsn"))
    with warehouse_connection(settings) as conn:
        docs = read_documents(conn, options.author)
    if not docs:
        raise LookupError(f"marts.documents holds no document of author {options.author!r}")
    generator = generator or build_generator(options.generator, settings)
    result = BuildResult(generator=generator_label(generator), documents=len(docs))
    built, question_set = build_question_set(
        settings,
        options.author,
        generator,
        docs=docs,
        languages=options.languages,
        # the instruction cap bounds the question generator's calls as well (a local model
        # writes one question per document otherwise)
        max_generated=options.max_instructions or None,
    )
    result.question_set = built.as_dict()
    drops = filters.DropCounter()
    candidates = _section_candidates(docs, options, drops)
    instructions = _instructions(settings, generator, candidates, drops, result)
    signatures = closing_paragraphs(d.body for d in docs)
    by_id = {d.document_id: d for d in docs}
    preferences = (
        _preferences(settings, generator, instructions, signatures, by_id, options, drops, result)
        if options.preference
        else []
    )
    instructions, preferences = _decontaminate(instructions, preferences, question_set.texts, drops)
    result.drop_reasons = drops.as_dict()
    result.counts = _counts(instructions, preferences)
    result.usage = generator.usage.as_dict()
    result.generator_calls = generator.usage.calls
    config = {
        "generator": generator.name,
        "generator_config": generator.config,
        "build": BUILD_VERSION,
        "question_set": built.version,
        **options.model_dump(mode="json", exclude={"author", "generator"}),
    }
    memberships = sorted((s.sample_id, s.split.value) for s in [*instructions, *preferences])
    result.version = content_digest({"config": config, "samples": memberships})
    existing = store.find_dataset_version(settings, result.version)
    rows = lineage.sample_rows(instructions, preferences)
    if existing is None:
        result.export_uri = lineage.export_jsonl(settings, options.author, result.version, rows)
        version = DatasetVersion(
            version=result.version,
            author=options.author,
            created_at=datetime.now(UTC),
            generator_config=config,
            counts=result.counts,
            drop_reasons=result.drop_reasons,
            source_document_ids=tuple(sorted({s.document_id for s in instructions})),
            export_uri=result.export_uri,
        )
        written = store.write_dataset_version(settings, version, instructions, preferences)
        result.created, result.rows_written = written.created, written.rows_written
    else:
        result.export_uri = existing.export_uri
    result.mlflow_run_id = store.version_mlflow_run(settings, result.version)
    if log_mlflow and result.mlflow_run_id is None:
        result.mlflow_run_id = lineage.log_to_mlflow(
            settings,
            result.version,
            rows,
            result.export_uri,
            params={"author": options.author, **config},
            counts=result.counts,
            drop_reasons=result.drop_reasons,
        )
        store.set_version_lineage(
            settings, result.version, export_uri=None, mlflow_run_id=result.mlflow_run_id
        )
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "dataset %s: %s, %d rows written, %d generator calls (%d documents sent), counts %s, "
        "drops %s",
        result.version[:16],
        "new version" if result.created else "unchanged",
        result.rows_written,
        result.generator_calls,
        len(result.documents_generated),
        result.counts,
        result.drop_reasons,
    )
    return result


# --- sections -------------------------------------------------------------------------------


def _section_candidates(
    docs: list[MartDocument], options: DatasetOptions, drops: filters.DropCounter
) -> list[_Candidate]:
    """Sections that pass the text filters, earliest documents first, capped if asked."""
    ordered = sorted(docs, key=lambda d: (d.published_at is None, d.published_at, d.document_id))
    kept: list[_Candidate] = []
    for doc in ordered:
        split = split_of(doc.document_id, options.test_share)
        for section in split_sections(doc):
            reason = (
                filters.length_reason(
                    section.text, options.min_answer_chars, options.max_answer_chars
                )
                or filters.boilerplate_reason(section.text)
                or ("pii" if filters.find_pii(section.text) else None)
                or filters.language_reason(section.text, options.languages)
            )
            if reason:
                drops.drop(reason)
                continue
            kept.append(_Candidate(doc, section, split))
    kept = filters.drop_exact_duplicates(kept, lambda c: c.section.text, drops)
    kept = filters.drop_near_duplicates(
        kept, lambda c: c.section.text, drops, group=lambda c: c.doc.document_id
    )
    if options.max_instructions and len(kept) > options.max_instructions:
        ranked = sorted(kept, key=lambda c: c.section.section_id)
        chosen = {c.section.section_id for c in ranked[: options.max_instructions]}
        drops.drop("over_sample_cap", len(kept) - len(chosen))
        kept = [c for c in kept if c.section.section_id in chosen]
    return kept


# --- generation (through the cache) ---------------------------------------------------------


def _instructions(
    settings: Settings,
    generator: InstructionGenerator,
    candidates: list[_Candidate],
    drops: filters.DropCounter,
    result: BuildResult,
) -> list[InstructionSample]:
    prompts = {
        c.section.section_id: SectionPrompt(
            c.section.section_id,
            c.section.platform,
            c.section.document_kind,
            c.section.title,
            c.section.heading_path,
            c.section.text,
        )
        for c in candidates
    }
    generated = cached_generate(
        settings,
        generator,
        "instruction",
        [(c.doc, prompts[c.section.section_id]) for c in candidates],
        generator.instructions,
        result,
    )
    label = generator_label(generator)
    samples = []
    for c in candidates:
        item = generated[c.section.section_id]
        if item.text is None:
            drops.drop(item.reason or "generator_no_output")
            continue
        instruction = item.text.strip()
        reason = filters.length_reason(instruction, 10, 400, "instruction") or (
            "pii" if filters.find_pii(instruction) else None
        )
        if reason:
            drops.drop(reason)
            continue
        sample_id = content_digest(
            ["instruction", c.doc.document_id, c.section.path, instruction, c.section.text, label]
        )[:32]
        samples.append(
            InstructionSample(
                sample_id=sample_id,
                document_id=c.doc.document_id,
                platform=c.doc.platform,
                document_kind=c.doc.document_kind,
                section=c.section.path,
                instruction=instruction,
                answer=c.section.text,
                split=c.split,
                generator=label,
            )
        )
    return filters.drop_exact_duplicates(samples, lambda s: s.instruction + "\n" + s.answer, drops)


def _preferences(
    settings: Settings,
    generator: InstructionGenerator,
    instructions: list[InstructionSample],
    signatures: set[str],
    docs: dict[str, MartDocument],
    options: DatasetOptions,
    drops: filters.DropCounter,
    result: BuildResult,
) -> list[PreferenceSample]:
    chosen_of = {s.sample_id: strip_signoff(s.answer, signatures) for s in instructions}
    pool = [s for s in instructions if chosen_of[s.sample_id]]
    if options.max_preferences and len(pool) > options.max_preferences:
        drops.drop("preference_over_cap", len(pool) - options.max_preferences)
        pool = sorted(pool, key=lambda s: s.sample_id)[: options.max_preferences]
    requests = [
        (
            docs[s.document_id],
            AnswerPrompt(s.sample_id, s.instruction, s.platform, len(chosen_of[s.sample_id])),
        )
        for s in pool
    ]
    generated = cached_generate(
        settings, generator, "rejected", requests, generator.answers, result
    )
    samples = []
    for s in pool:
        item = generated[s.sample_id]
        if item.text is None:
            drops.drop(item.reason or "generator_no_output")
            continue
        if filters.find_pii(item.text):
            drops.drop("pii")
            continue
        pair = balance_pair(chosen_of[s.sample_id], item.text, signatures)
        if pair.reason:
            drops.drop(pair.reason)
            continue
        sample_id = content_digest(
            ["preference", s.document_id, s.instruction, pair.chosen, pair.rejected, s.generator]
        )[:32]
        samples.append(
            PreferenceSample(
                sample_id=sample_id,
                document_id=s.document_id,
                platform=s.platform,
                document_kind=s.document_kind,
                prompt=s.instruction,
                chosen=pair.chosen or "",
                rejected=pair.rejected or "",
                split=s.split,
                generator=s.generator,
            )
        )
    return samples


# --- decontamination and counts ---------------------------------------------------------------


def _decontaminate(
    instructions: list[InstructionSample],
    preferences: list[PreferenceSample],
    questions: list[str],
    drops: filters.DropCounter,
) -> tuple[list[InstructionSample], list[PreferenceSample]]:
    """Drop samples that copy one of the author's evaluation questions, and training samples
    that share long n-grams with the test split."""
    heldout = [s.answer for s in instructions if s.split == Split.TEST]
    guard = filters.Decontaminator.build(questions, heldout)
    test_only = filters.Decontaminator.build(questions, [])

    def keep(prompt: str, text: str, split: Split) -> bool:
        reason = (test_only if split == Split.TEST else guard).reason(prompt, text)
        if reason:
            drops.drop(reason)
        return reason is None

    kept_i = [s for s in instructions if keep(s.instruction, s.answer, s.split)]
    kept_p = [s for s in preferences if keep(s.prompt, s.chosen, s.split)]
    return kept_i, kept_p


def _counts(
    instructions: list[InstructionSample], preferences: list[PreferenceSample]
) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for kind, samples in (("instruction", instructions), ("preference", preferences)):
        for s in samples:
            counts[f"{kind}/{s.split.value}"] += 1
            counts[f"{kind}/platform/{s.platform}"] += 1
        counts[f"{kind}/documents"] = len({s.document_id for s in samples})
    return dict(sorted(counts.items()))
