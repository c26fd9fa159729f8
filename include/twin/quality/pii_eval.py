"""Redaction recall and false-positive rate on the labelled PII set (`pii_labelled.yaml`).

The redactor is measured as dbt runs it: the SQL of `twin.quality.pii_macros` on the warehouse's
Postgres. A labelled value counts as redacted when no part of it survives (for a multi-line
private key: its key material). The false-positive rate is the share of texts with no personal
data that the redaction changed. The independent detector (the marts gate) is scored on the
same set: a value is found when a finding overlaps it. `python -m twin.quality.pii_eval` prints
both; it needs the warehouse (`twin stack up`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from twin.quality.pii_detect import find_pii
from twin.quality.pii_macros import redact_sql

LABELLED_SET = Path(__file__).with_name("pii_labelled.yaml")


@dataclass
class Scores:
    """Per-kind recall counts and the false-positive count on texts without PII."""

    found: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    false_positives: int = 0
    negatives: int = 0
    missed: list[str] = field(default_factory=list)

    def add(self, kind: str, hit: bool, label: str) -> None:
        self.total[kind] = self.total.get(kind, 0) + 1
        self.found[kind] = self.found.get(kind, 0) + int(hit)
        if not hit:
            self.missed.append(label)

    @property
    def recall(self) -> float:
        return sum(self.found.values()) / max(1, sum(self.total.values()))

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / max(1, self.negatives)

    def as_dict(self) -> dict:
        return {
            "recall": round(self.recall, 3),
            "false_positive_rate": round(self.false_positive_rate, 3),
            "values": sum(self.total.values()),
            "negatives": self.negatives,
            "per_kind": {k: f"{self.found[k]}/{self.total[k]}" for k in sorted(self.total)},
            "missed": self.missed,
        }


def labelled_items(path: Path = LABELLED_SET) -> list[dict]:
    """The labelled texts: `{"text": str, "pii": [{"kind": str, "value": str}, ...]}`."""
    items = yaml.safe_load(path.read_text(encoding="utf-8"))["items"]
    for i, item in enumerate(items):
        for p in item["pii"]:
            if p["value"] not in item["text"]:
                raise ValueError(f"labelled item {i}: value {p['value']!r} is not in its text")
    return items


def redact_all(conn: psycopg.Connection, texts: list[str]) -> list[str]:
    """Each text through the warehouse's redaction SQL, in order."""
    conn.execute("create temporary table pii_eval (n int, t text) on commit drop")
    with conn.cursor().copy("copy pii_eval (n, t) from stdin") as copy:
        for n, text in enumerate(texts):
            copy.write_row((n, text))
    # no parameters: the patterns' `%` must not be read as placeholders
    rows = conn.execute(f"select {redact_sql('t')} from pii_eval order by n").fetchall()
    conn.rollback()
    return [r[0] for r in rows]


def survives(value: str, redacted: str) -> bool:
    """Whether any line of at least 6 characters of `value` is still in `redacted`."""
    parts = [line.strip() for line in value.splitlines() if len(line.strip()) >= 6]
    return any(part in redacted for part in parts or [value])


def score_redaction(items: list[dict], redacted: list[str]) -> Scores:
    scores = Scores()
    for item, out in zip(items, redacted, strict=True):
        if not item["pii"]:
            scores.negatives += 1
            scores.false_positives += int(out != item["text"])
            if out != item["text"]:
                scores.missed.append(f"false positive: {item['text'][:60]!r}")
        for p in item["pii"]:
            scores.add(
                p["kind"], not survives(p["value"], out), f"{p['kind']}: {p['value'][:40]!r}"
            )
    return scores


def score_detector(items: list[dict]) -> Scores:
    scores = Scores()
    for item in items:
        findings = find_pii(item["text"])
        if not item["pii"]:
            scores.negatives += 1
            scores.false_positives += int(bool(findings))
            if findings:
                scores.missed.append(f"false positive: {item['text'][:60]!r}")
        for p in item["pii"]:
            start = item["text"].find(p["value"])
            end = start + len(p["value"])
            hit = any(f.start < end and f.end > start for f in findings)
            scores.add(p["kind"], hit, f"{p['kind']}: {p['value'][:40]!r}")
    return scores


def evaluate(conn: psycopg.Connection, path: Path = LABELLED_SET) -> dict:
    """`{"redactor": scores, "detector": scores}` on the labelled set."""
    items = labelled_items(path)
    redacted = redact_all(conn, [i["text"] for i in items])
    return {
        "items": len(items),
        "redactor": score_redaction(items, redacted).as_dict(),
        "detector": score_detector(items).as_dict(),
    }


def main() -> int:
    from twin.settings import load_settings
    from twin.store.warehouse import warehouse_connection

    with warehouse_connection(load_settings()) as conn:
        print(json.dumps(evaluate(conn), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
