"""Guardrails around generation: passages cleaned of instructions, answers cleaned of PII.

Retrieved passages are data, never instructions: sentences that address the model ("ignore the
previous instructions", "you are now…", "system:", chat-template tokens) are removed before a
passage reaches the prompt. Answers are scanned for e-mail addresses, phone numbers, payment card
numbers and IBANs (the warehouse's rules, `twin.domain.pii`), plus card numbers, each replaced by a
bracketed label, before they reach the client or the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

NOT_WRITTEN = "I have not written about that."
REMOVED = "[removed instruction]"

_INSTRUCTION_PATTERNS = [
    r"\b(?:ignore|disregard|forget|override)\b[^.!?\n]{0,60}\b(?:instructions?|prompts?|rules?|"
    r"guidelines|context|above|everything)\b",
    r"\byou are now\b",
    r"\b(?:new|updated|real|actual)\s+instructions?\s*:",
    r"\b(?:act|behave|respond|answer)\s+as\s+(?:if\s+you\s+were\s+|an?\s+)?(?:unrestricted|"
    r"jailbroken|dan|evil|different)\b",
    r"\bpretend\s+(?:to\s+be|you\s+are)\b",
    r"\b(?:reveal|print|show|repeat|output)\b[^.!?\n]{0,40}\b(?:system prompt|instructions|"
    r"secrets?|passwords?|api keys?)\b",
    r"\bdo not (?:tell|mention|reveal) (?:the user|anyone)\b",
    r"\b(?:always|only) (?:answer|reply|respond) with\b",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS), re.IGNORECASE)
_ROLE_LINE = re.compile(r"^\s*(?:system|assistant|user|developer)\s*:", re.IGNORECASE)
_TEMPLATE_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>")
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")

# Answers are redacted with the warehouse's own rules (twin.domain.pii, one definition); card
# numbers, which the warehouse rules do not cover, are added here with a Luhn check.
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


@dataclass(frozen=True)
class Sanitised:
    """A passage's text after the instruction filter, and how many sentences were removed."""

    text: str
    removed: int


def strip_instructions(text: str) -> Sanitised:
    """`text` without sentences that read as instructions to a model, nor chat-template tokens."""
    removed = 0
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        if _ROLE_LINE.match(line):
            removed += 1
            continue
        for sentence in _SENTENCE.findall(line):
            if sentence and _INSTRUCTION.search(sentence):
                removed += 1
                kept.append(REMOVED + ("\n" if sentence.endswith("\n") else " "))
            else:
                kept.append(sentence)
    cleaned, tokens = _TEMPLATE_TOKENS.subn("", "".join(kept))
    return Sanitised(cleaned.strip(), removed + tokens)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


@lru_cache(maxsize=1)
def _pii_rules() -> list[tuple[re.Pattern[str], str]]:
    from twin.domain.pii import RULES

    return [
        # PostgreSQL's `.` matches newlines, as DOTALL makes Python's do
        (re.compile(r.pattern, re.DOTALL | (re.IGNORECASE if r.ignore_case else 0)), r.replacement)
        for r in RULES
    ]


def redact_pii(text: str) -> tuple[str, int]:
    """`text` with the warehouse's PII and secrets rules applied (`[EMAIL]`, `[PHONE]`, `[IBAN]`,
    `[SECRET]`, ...) and Luhn-valid card numbers replaced by `[CARD]`; returns the text and how
    many replacements were made."""
    count = 0
    for pattern, replacement in _pii_rules():
        text, n = pattern.subn(replacement, text)
        count += n

    def card(match: re.Match[str]) -> str:
        nonlocal count
        if not _luhn(re.sub(r"\D", "", match.group(0))):
            return match.group(0)
        count += 1
        return "[CARD]"

    return _CARD.sub(card, text), count
