"""Guardrails around generation: passages cleaned of instructions, answers cleaned of PII.

Retrieved passages are data, never instructions: sentences that address the model ("ignore the
previous instructions", "you are now…", "system:", chat-template tokens) are removed before a
passage reaches the prompt. Answers are scanned for e-mail addresses, phone numbers, payment card
numbers and IBANs, each replaced by a bracketed label, before they reach the client or the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(
    r"(?<![\w/])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){2,4}\b"
)


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


def redact_pii(text: str) -> tuple[str, int]:
    """`text` with e-mails, card numbers (Luhn-valid), IBANs and phone numbers replaced by
    `[email]`, `[card]`, `[iban]`, `[phone]`; returns the text and how many were replaced."""
    count = 0

    def sub(label: str, check=None):
        def replace(match: re.Match[str]) -> str:
            nonlocal count
            if check and not check(match.group(0)):
                return match.group(0)
            count += 1
            return f"[{label}]"

        return replace

    text = _EMAIL.sub(sub("email"), text)
    text = _IBAN.sub(sub("iban"), text)
    text = _CARD.sub(sub("card", lambda s: _luhn(re.sub(r"\D", "", s))), text)
    text = _PHONE.sub(sub("phone", lambda s: len(re.sub(r"\D", "", s)) >= 7), text)
    return text, count
