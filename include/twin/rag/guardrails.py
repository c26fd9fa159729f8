"""Guardrails around generation: passages cleaned of instructions, answers cleaned of PII.

Retrieved passages are data, never instructions: sentences that address the model ("ignore the
previous instructions", "you are now…", "system:", chat-template tokens) are removed before a
passage reaches the prompt. The text is normalised before it is checked, so an instruction
cannot hide behind a template token inside a word (`Ign<|x|>ore`), zero-width or other invisible
format characters, compatibility forms (full-width letters), line breaks or runs of spaces.
Answers are scanned for e-mail addresses, phone numbers, payment card numbers and IBANs (the
warehouse's rules, `twin.domain.pii`), plus card numbers, each replaced by a bracketed label,
before they reach the client or the log.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from twin.domain.pii import redact

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
# a space in a pattern stands for any run of whitespace, line breaks included
_INSTRUCTION = re.compile(
    "|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS).replace(" ", r"\s+"), re.IGNORECASE
)
_ROLE_LINE = re.compile(r"^\s*(?:system|assistant|user|developer)\s*:", re.IGNORECASE)
_TEMPLATE_TOKENS = re.compile(
    r"<\|[^|>]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>", re.IGNORECASE
)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")
# control characters other than tab and line breaks
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Sanitised:
    """A passage's text after the instruction filter, and how many sentences were removed."""

    text: str
    removed: int


def normalise(text: str) -> tuple[str, int]:
    """`text` as the instruction check reads it: Unicode NFKC (full-width and other compatibility
    forms become plain letters), invisible format characters (zero-width spaces and joiners, soft
    hyphens, direction marks) and control characters dropped, then chat-template and special
    tokens removed until none is left (a token can hide inside another). Returns the text and how
    many tokens were removed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _CONTROL.sub("", text)
    removed = 0
    while True:
        text, found = _TEMPLATE_TOKENS.subn("", text)
        if not found:
            return text, removed
        removed += found


def strip_instructions(text: str) -> Sanitised:
    """`text`, normalised (see `normalise`), without role lines and without the sentences that
    read as instructions to a model. An instruction is looked for across line breaks and runs of
    whitespace; every sentence or line it touches is replaced by `REMOVED`."""
    text, tokens = normalise(text)
    lines = text.splitlines(keepends=True)
    kept_lines = [line for line in lines if not _ROLE_LINE.match(line)]
    roles = len(lines) - len(kept_lines)
    body = "".join(kept_lines)
    # line breaks read as spaces, so an instruction split over lines is still one match
    hits = [m.span() for m in _INSTRUCTION.finditer(body.replace("\n", " "))]
    removed = 0
    kept: list[str] = []
    for match in _SENTENCE.finditer(body):
        sentence, (start, end) = match.group(0), match.span()
        if sentence and any(a < end and start < b for a, b in hits):
            removed += 1
            kept.append(REMOVED + ("\n" if sentence.endswith("\n") else " "))
        else:
            kept.append(sentence)
    return Sanitised("".join(kept).strip(), removed + roles + tokens)


def redact_pii(text: str) -> tuple[str, int]:
    """`text` with the warehouse's PII and secrets rules applied and Luhn-valid card numbers
    replaced by `[CARD]` (`twin.domain.pii.redact`); returns the text and how many replacements
    were made."""
    return redact(text)
