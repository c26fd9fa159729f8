"""Dataset versions as the trainers read them: TRL's conversational rows, written to JSONL."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from twin.domain.samples import (
    DatasetSnapshot,
    DatasetVersion,
    InstructionSample,
    PreferenceSample,
    Split,
    content_digest,
)


def sft_rows(snapshot: DatasetSnapshot, split: Split = Split.TRAIN) -> list[dict]:
    """`{"messages": [user, assistant]}` rows: the loss falls on the author's answer only."""
    return [{"messages": s.messages()} for s in snapshot.instruction_split(split)]


def dpo_rows(snapshot: DatasetSnapshot, split: Split = Split.TRAIN) -> list[dict]:
    """`{"prompt", "chosen", "rejected"}` conversational rows (chosen: the author's text)."""
    return [
        {
            "prompt": [{"role": "user", "content": s.prompt}],
            "chosen": [{"role": "assistant", "content": s.chosen}],
            "rejected": [{"role": "assistant", "content": s.rejected}],
        }
        for s in snapshot.preference_split(split)
    ]


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    """Write rows atomically (a crashed writer never leaves half a file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a killed writer
                continue
    return rows


# --- a snapshot built straight from the bundled sample author (tests, and when no dataset
# version exists yet): one instruction per paragraph, the bland rewrite as the rejected answer.

_BLAND = (
    "There are many factors to consider here. In general, it depends on your specific use case, "
    "and it is important to follow best practices and consult the documentation."
)


def sample_author_snapshot(max_chars: int = 600, test_share: int = 5) -> DatasetSnapshot:
    """The sample author's published writing as a dataset snapshot; every `test_share`-th
    document (by a stable hash) is held out, so splits never share a document."""
    from sample_author.content import AUTHOR, load_documents

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
