"""Dataset versions as the trainers read them: TRL's conversational rows, written to JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from twin.domain.samples import DatasetSnapshot, Split
from twin.store.files import atomic_writer


def sft_rows(snapshot: DatasetSnapshot, split: Split = Split.TRAIN) -> list[dict]:
    """`{"messages": [user, assistant]}` rows: the loss falls on the author's answer only."""
    return [{"messages": s.messages()} for s in snapshot.instruction_split(split)]


def dpo_rows(
    snapshot: DatasetSnapshot,
    split: Split = Split.TRAIN,
    own_answers: dict[str, str] | None = None,
    limit: int | None = None,
) -> tuple[list[dict], dict[str, int]]:
    """`{"prompt", "chosen", "rejected"}` conversational rows (chosen: the author's text;
    rejected: the model's own answer from `own_answers` by prompt, else the dataset's, see
    `pair_with_own_answer`), and how many rejected sides came from each source. `limit`: the
    first pairs by sample id (those a step-limited run reaches)."""
    from twin.datasets.preference import pair_with_own_answer

    samples = preference_samples(snapshot, split, limit)
    rows, sources = [], {"own": 0, "fallback": 0}
    for s in samples:
        own = (own_answers or {}).get(s.prompt)
        pair, source = pair_with_own_answer(s.chosen, own, s.rejected)
        sources[source] += 1
        rows.append(
            {
                "prompt": [{"role": "user", "content": s.prompt}],
                "chosen": [{"role": "assistant", "content": pair.chosen}],
                "rejected": [{"role": "assistant", "content": pair.rejected}],
            }
        )
    return rows, sources


def preference_samples(
    snapshot: DatasetSnapshot, split: Split = Split.TRAIN, limit: int | None = None
) -> list:
    """The split's preference samples in sample-id order, the first `limit` of them."""
    samples = sorted(snapshot.preference_split(split), key=lambda s: s.sample_id)
    return samples[:limit] if limit else samples


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    """Write rows atomically (a crashed writer never leaves half a file behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
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
