"""Preference pairs without the shortcuts a preference model learns first.

From the sample author's letter "Preference data is harder than instruction data": a model
learns whatever separates chosen from rejected most easily, so
- sign-offs, greetings and signature lines are stripped from both sides (a closing phrase must
  not be the tell),
- chosen and rejected are made to lie within 20% of each other in length, by trimming the longer
  one at a sentence boundary, or the pair is dropped,
- a pair whose rejected text is nearly the chosen one teaches nothing and is dropped.
At training time the rejected side becomes the model's own answer to the prompt
(`pair_with_own_answer`); the dataset's rejected text is the labelled fallback.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from twin.domain.text import shingles

LENGTH_TOLERANCE = 0.2
NEAR_IDENTICAL_JACCARD = 0.7
MIN_CHOSEN_CHARS = 100
# A closing paragraph that ends this many of one author's documents is a signature line.
SIGNATURE_MIN_DOCUMENTS = 3

SIGNOFF_RE = re.compile(
    r"^\s*(?:[—–-]{1,2}\s*\w[\w .'-]{0,40}"  # "— Ada", "-- Ada L."
    r"|(?:#[\w-]+\s*)+"  # a hashtag line
    r"|(?:best|cheers|thanks|thank you|regards|best regards|kind regards|warmly|yours|"
    r"until next time|see you next (?:week|time)|thanks for reading|reply any time|"
    r"link in the comments|happy (?:to help|building))[\w ,.!]{0,40}"
    r")\s*[.!,]?\s*$",
    re.IGNORECASE,
)
GREETING_RE = re.compile(
    r"^\s*(?:hi|hello|hey|dear)\b[\w ,]{0,30}[,!:]\s*$"
    r"|^\s*(?:hi|hello|hey) (?:friends|all|everyone)\b[^\n]{0,20}$",
    re.IGNORECASE,
)
SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def closing_paragraphs(texts: Iterable[str]) -> set[str]:
    """Closing paragraphs that end at least `SIGNATURE_MIN_DOCUMENTS` of the given texts: the
    author's recurring signature lines (a motto, a name), learned from the author's own data."""
    counts: Counter[str] = Counter()
    for text in texts:
        paragraphs = _paragraphs(text)
        for paragraph in paragraphs[-2:]:
            counts[_norm(paragraph)] += 1
    return {p for p, n in counts.items() if n >= SIGNATURE_MIN_DOCUMENTS and len(p) <= 120}


def strip_signoff(text: str, signatures: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    """The text without a leading greeting and trailing sign-offs, hashtag lines and signature
    lines (a paragraph in `signatures`, or a line matching the sign-off patterns)."""
    paragraphs = _paragraphs(text)
    while paragraphs and GREETING_RE.match(paragraphs[0]):
        paragraphs.pop(0)
    while paragraphs:
        last = paragraphs[-1]
        lines = [ln for ln in last.splitlines() if ln.strip()]
        if _norm(last) in signatures or all(SIGNOFF_RE.match(ln) for ln in lines):
            paragraphs.pop()
            continue
        # a paragraph ending in a sign-off line ("Thanks,\n— Ada"): drop those lines
        while lines and (SIGNOFF_RE.match(lines[-1]) or _norm(lines[-1]) in signatures):
            lines.pop()
        paragraphs[-1] = "\n".join(lines)
        break
    return "\n\n".join(p for p in paragraphs if p.strip()).strip()


def sentences(text: str) -> list[str]:
    """The text cut after each sentence end (the pieces joined back give the text)."""
    pieces, start = [], 0
    for match in SENTENCE_END_RE.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def trim_to(text: str, max_chars: int) -> str | None:
    """The longest run of whole opening sentences within `max_chars`, or None when even the
    first sentence is longer."""
    kept = ""
    for sentence in sentences(text):
        if len((kept + sentence).rstrip()) > max_chars:
            break
        kept += sentence
    kept = kept.rstrip()
    return kept or None


def lengths_match(a: str, b: str, tolerance: float = LENGTH_TOLERANCE) -> bool:
    """Whether the two lengths differ by at most `tolerance` of the longer one."""
    long, short = max(len(a), len(b)), min(len(a), len(b))
    return long > 0 and (long - short) <= tolerance * long


@dataclass(frozen=True)
class PairOutcome:
    """A balanced (chosen, rejected) pair, or the reason there is none."""

    chosen: str | None = None
    rejected: str | None = None
    reason: str | None = None


def balance_pair(
    chosen: str,
    rejected: str,
    signatures: set[str] = frozenset(),  # type: ignore[assignment]
) -> PairOutcome:
    """Strip sign-offs from both sides, match lengths within 20% by trimming the longer side at
    a sentence boundary, and refuse near-identical pairs."""
    chosen = strip_signoff(chosen, signatures)
    rejected = strip_signoff(rejected, signatures)
    if not rejected:
        return PairOutcome(reason="preference_empty_rejected")
    if not lengths_match(chosen, rejected):
        shorter = min(len(chosen), len(rejected))
        limit = int(shorter / (1 - LENGTH_TOLERANCE))
        if len(chosen) > len(rejected):
            chosen = trim_to(chosen, limit) or ""
        else:
            rejected = trim_to(rejected, limit) or ""
        if not lengths_match(chosen, rejected):
            return PairOutcome(reason="preference_length_mismatch")
    if len(chosen) < MIN_CHOSEN_CHARS or not chosen[:1].isupper() or chosen[-1] not in ".!?":
        return PairOutcome(reason="preference_chosen_unusable")
    if near_identical(chosen, rejected):
        return PairOutcome(reason="preference_near_identical")
    return PairOutcome(chosen, rejected)


def near_identical(a: str, b: str, threshold: float = NEAR_IDENTICAL_JACCARD) -> bool:
    """Jaccard similarity of word 3-shingles at or above `threshold`."""
    sa, sb = shingles(a, 3), shingles(b, 3)
    if not sa or not sb:
        return a.strip().lower() == b.strip().lower()
    return len(sa & sb) / len(sa | sb) >= threshold


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


OWN_ANSWER = "own"
FALLBACK = "fallback"


def pair_with_own_answer(
    chosen: str, own_answer: str | None, fallback_rejected: str
) -> tuple[PairOutcome, str]:
    """The pair whose rejected side is the model's own answer to the prompt (`OWN_ANSWER`), or,
    when there is none or it cannot be balanced against the chosen text, the dataset's rejected
    text (`FALLBACK`, e.g. the offline generator's stock sentences), labelled so."""
    if own_answer and own_answer.strip():
        pair = balance_pair(chosen, own_answer)
        if pair.reason is None:
            return pair, OWN_ANSWER
    return PairOutcome(chosen, fallback_rejected), FALLBACK
