"""Sample filters, each with a named drop reason: length, language, boilerplate, PII, exact and
near duplicates, and decontamination against the author's evaluation questions (their question
set, `twin.datasets.questions`) and the test split.

Every filter takes candidates in a fixed order and keeps the first of a group of copies, so the
same inputs always drop the same samples.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from datasketch import MinHashLSH

from twin.domain.pii import RULES
from twin.domain.text import (
    NUM_PERM,
    PLACEHOLDER_RE,
    WORD_RE,
    detect_language,
    is_near_duplicate,
    minhash_of,
)

T = TypeVar("T")

# The project's one definition of personal data and secrets (the patterns the warehouse redacts),
# as a detector: generated instructions and rejected answers never went through the redactor.
PII_RULES = tuple(
    (r.kind, re.compile(r.pattern, re.IGNORECASE if r.ignore_case else 0)) for r in RULES
)
BOILERPLATE_RE = re.compile(
    r"\b(?:subscribe (?:to|for)|sign up for (?:my|our|the) newsletter|all rights reserved|"
    r"cookie (?:policy|settings)|share this (?:post|article)|follow me on|click here|"
    r"read more at|this post was originally published|table of contents)\b",
    re.IGNORECASE,
)
URL_RE = re.compile(r"https?://\S+")


@dataclass
class DropCounter:
    """Drop reasons and how many candidates each removed."""

    counts: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def find_pii(text: str) -> list[str]:
    """The kinds of personal data or secrets found in the text (empty when clean)."""
    return sorted({kind for kind, pattern in PII_RULES if pattern.search(text)})


def length_reason(text: str, min_chars: int, max_chars: int, what: str = "answer") -> str | None:
    if len(text) < min_chars:
        return f"{what}_too_short"
    if len(text) > max_chars:
        return f"{what}_too_long"
    return None


def language_reason(text: str, languages: Sequence[str]) -> str | None:
    """`language` when the text's detected language is not an accepted one (prose only; text
    too short to tell passes)."""
    code, _ = detect_language(text)
    if code == "und" or code in languages:
        return None
    return "language"


def boilerplate_reason(text: str) -> str | None:
    """`boilerplate` for calls to action, navigation and link lists rather than writing."""
    if BOILERPLATE_RE.search(text):
        return "boilerplate"
    words = WORD_RE.findall(URL_RE.sub(" ", text))
    if len(URL_RE.findall(text)) * 8 > max(len(words), 1):
        return "boilerplate"
    if len(PLACEHOLDER_RE.findall(text)) * 20 > max(len(words), 1):
        return "boilerplate"  # mostly redacted: nothing left to learn
    return None


def drop_exact_duplicates(
    items: Sequence[T], key: Callable[[T], str], drops: DropCounter
) -> list[T]:
    """The items without later ones whose normalised text equals an earlier one's."""
    seen: set[str] = set()
    kept = []
    for item in items:
        digest = hashlib.sha256(" ".join(key(item).lower().split()).encode()).hexdigest()
        if digest in seen:
            drops.drop("exact_duplicate")
            continue
        seen.add(digest)
        kept.append(item)
    return kept


def drop_near_duplicates(
    items: Sequence[T], key: Callable[[T], str], drops: DropCounter, group: Callable[[T], str]
) -> list[T]:
    """The items without later ones that are near-duplicates (the project's MinHash rules) of an
    earlier one from another document (pieces of one document are never copies of each other)."""
    lsh = MinHashLSH(threshold=0.5, num_perm=NUM_PERM)
    signatures: dict[str, tuple] = {}
    kept = []
    for index, item in enumerate(items):
        sig, size = minhash_of(key(item))
        duplicate = False
        for other in lsh.query(sig) if size else []:
            other_sig, other_size, other_group = signatures[other]
            if other_group == group(item):
                continue
            if is_near_duplicate(sig.jaccard(other_sig), size, other_size):
                duplicate = True
                break
        if duplicate:
            drops.drop("near_duplicate")
            continue
        name = str(index)
        if size:
            lsh.insert(name, sig)
        signatures[name] = (sig, size, group(item))
        kept.append(item)
    return kept


# --- decontamination --------------------------------------------------------------------------

DECONTAMINATION_N = 8
QUESTION_OVERLAP = 0.6


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = WORD_RE.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Decontaminator:
    """Refuses training text that copies an evaluation prompt or test-split text.

    - an evaluation question is matched word 3-grams: a prompt holding at least 60% of a
      question's 3-grams (a short question: all its words in order) is contaminated;
    - longer held-out texts are matched by word 8-grams: any shared 8-gram contaminates.
    """

    question_grams: tuple[frozenset[tuple[str, ...]], ...]
    heldout_grams: frozenset[tuple[str, ...]]

    @classmethod
    def build(cls, questions: Iterable[str], heldout: Iterable[str]) -> Decontaminator:
        grams = tuple(frozenset(ngrams(q, 3)) for q in questions if q.strip())
        held: set[tuple[str, ...]] = set()
        for text in heldout:
            held |= (
                ngrams(text, DECONTAMINATION_N) if len(text.split()) >= DECONTAMINATION_N else set()
            )
        return cls(grams, frozenset(held))

    def reason(self, prompt: str, text: str) -> str | None:
        prompt_grams = ngrams(prompt, 3)
        text_grams = prompt_grams | ngrams(text, 3)
        for question in self.question_grams:
            if question and len(question & prompt_grams) >= QUESTION_OVERLAP * len(question):
                return "decontamination_eval_question"
            if question and len(question) >= 6 and question <= text_grams:
                return "decontamination_eval_question"
        if (
            self.heldout_grams
            and ngrams(f"{prompt}\n{text}", DECONTAMINATION_N) & self.heldout_grams
        ):
            return "decontamination_test_split"
        return None
