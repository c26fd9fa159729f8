"""Output guardrails: rules an answer must never break, whichever model wrote it.

Each rule is cheap and deterministic; `violations` lists the rules an answer breaks, so a
deployment can compare the challenger's violation rate with the champion's.
"""

from __future__ import annotations

import re

from twin.domain.pii import PLACEHOLDERS

LEAKED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "[INST]")
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<!\w)\+?\d[\d ()-]{8,}\d(?!\w)")
WORD = re.compile(r"[^\W\d_]{2,}")
MAX_ANSWER_CHARS = 8000


def violations(answer: str) -> list[str]:
    """The guardrail rules `answer` breaks (empty list: none)."""
    found: list[str] = []
    text = answer.strip()
    if not text:
        return ["empty"]
    if len(text) > MAX_ANSWER_CHARS:
        found.append("too_long")
    if any(token in text for token in LEAKED_TOKENS):
        found.append("leaked_template")
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    if printable / len(text) < 0.95:
        found.append("unprintable")
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    words = WORD.findall(text)
    if letters / len(text) < 0.6 or not words:
        found.append("not_language")
    tokens = text.lower().split()
    if len(tokens) >= 12 and len(set(tokens)) / len(tokens) < 0.25:
        found.append("repetition")
    # stored answers are redacted before they reach a check: a placeholder is personal data
    # the model wrote
    if EMAIL.search(text) or PHONE.search(text) or any(p in text for p in PLACEHOLDERS):
        found.append("personal_data")
    return found


def violates(answer: str) -> bool:
    return bool(violations(answer))
