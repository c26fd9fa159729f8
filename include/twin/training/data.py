"""Dataset versions as the trainers read them: TRL's conversational rows, written to JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from twin.domain.samples import DatasetSnapshot, Split


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
