"""The sample author's writing as a training-dataset snapshot, without the warehouse: one
instruction per paragraph, a bland rewrite as the rejected answer. Offered to the platform through
the `twin.snapshots` entry point (`dataset_version="sample"` in twin_training), for tests and for
trying training before any dataset version exists."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from sample_author.content import AUTHOR, load_documents
from twin.domain.samples import (
    DatasetSnapshot,
    DatasetVersion,
    InstructionSample,
    PreferenceSample,
    Split,
    content_digest,
)

_BLAND = (
    "There are many factors to consider here. In general, it depends on your specific use case, "
    "and it is important to follow best practices and consult the documentation."
)


def snapshot(max_chars: int = 600, test_share: int = 5) -> DatasetSnapshot:
    """The sample author's published writing as a dataset snapshot; every `test_share`-th
    document (by a stable hash) is held out, so splits never share a document."""
    instructions: list[InstructionSample] = []
    preferences: list[PreferenceSample] = []
    for doc in load_documents():
        split = Split.TEST if int(_h(doc.key), 16) % test_share == 0 else Split.TRAIN
        for index, paragraph in enumerate(_paragraphs(doc.body, max_chars)):
            prompt = f"Write a {doc.platform} {doc.kind} passage about {doc.title}."
            if index:
                prompt = (
                    f"Continue your {doc.platform} {doc.kind} about {doc.title} (part {index + 1})."
                )
            sample_id = _h(f"{doc.key}:{index}:{prompt}")
            common = {
                "sample_id": sample_id,
                "document_id": doc.key,
                "platform": doc.platform,
                "document_kind": doc.kind,
                "split": split,
                "generator": "sample-author-paragraphs/v1",
            }
            instructions.append(
                InstructionSample(
                    **common, instruction=prompt, answer=paragraph, section=str(index)
                )
            )
            preferences.append(
                PreferenceSample(**common, prompt=prompt, chosen=paragraph, rejected=_BLAND)
            )
    counts = {
        f"{kind}/{split}": sum(1 for s in samples if s.split == split)
        for kind, samples in (("instruction", instructions), ("preference", preferences))
        for split in Split
    }
    payload = [s.model_dump(mode="json") for s in (*instructions, *preferences)]
    version = DatasetVersion(
        version=content_digest(payload)[:32],
        author=AUTHOR.name,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        generator_config={"generator": "sample-author-paragraphs/v1", "max_chars": max_chars},
        counts=counts,
        source_document_ids=tuple(sorted({s.document_id for s in instructions})),
    )
    return DatasetSnapshot(
        version=version, instructions=tuple(instructions), preferences=tuple(preferences)
    )


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _paragraphs(body: str, max_chars: int) -> list[str]:
    parts = []
    for block in re.split(r"\n\s*\n", body):
        block = block.strip()
        if len(block) < 80 or block.startswith(("```", "#", "|", "- ", "* ", ">")):
            continue
        parts.append(block[:max_chars].rsplit(" ", 1)[0] if len(block) > max_chars else block)
    return parts
