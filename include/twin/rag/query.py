"""Query understanding: pull search constraints out of a question, and expand its acronyms.

`parse_query` turns "What did I say about LoRA in my Medium posts in 2024?" into the text to search
for ("What did I say about LoRA?") and filters (platform medium, published in 2024) that retrieval
pushes into SQL. The rules are deliberately small and predictable:

- platforms: "Medium", "LinkedIn", "Substack" / "in my newsletter", "on GitHub" / "in the repo" /
  "in my code", "on my blog" / "blog posts" (a publication's own name, which only its author's
  data knows, stays in the text, where hybrid search matches it);
- document kinds: "LinkedIn posts" / "LinkedIn articles" (LinkedIn is the one platform with both),
  "in my articles" (article), "in my posts" (post), "in my repositories" (repository); a kind word
  after a single-kind platform ("Medium posts" are articles) is read as part of the platform name;
- dates, published_after inclusive and published_before exclusive, in UTC: "in 2023",
  "in March 2024", "since 2024", "after 2023", "before March 2024", "between 2023 and 2024",
  "last year" / "this year" / "last month" (calendar periods), "in the past 6 months" / "over the
  past year" (rolling), all relative to `now`;
- authors: a known author's full name, first or last name (when unambiguous), or possessive.

An optional extractor (for example an LLM call) can replace the rules: any callable taking the
question, the known authors and `now` and returning a `ParsedQuery` or a dict of its fields. When it
fails or returns nonsense, the rules answer instead.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from twin.domain.documents import PLATFORM_KINDS, DocumentKind, Platform

log = logging.getLogger(__name__)

PLATFORMS: tuple[str, ...] = tuple(p.value for p in Platform)
DOCUMENT_KINDS: tuple[str, ...] = tuple(k.value for k in DocumentKind)


def _known_values(value: list[str], known: tuple[str, ...], what: str) -> list[str]:
    """`value` lower-cased without repeats; a value not in `known` is a ValueError naming it."""
    value = list(dict.fromkeys(v.lower() for v in value))
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; expected {list(known)}")
    return value


class SearchFilters(BaseModel):
    """Constraints on which chunks may answer; every field is optional and they combine with AND."""

    author: str | None = None
    platforms: list[str] = Field(default_factory=list)
    document_kinds: list[str] = Field(default_factory=list)
    published_after: datetime | None = Field(default=None, description="inclusive, UTC")
    published_before: datetime | None = Field(default=None, description="exclusive, UTC")

    @field_validator("platforms")
    @classmethod
    def _known_platforms(cls, value: list[str]) -> list[str]:
        return _known_values(value, PLATFORMS, "platform")

    @field_validator("document_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        return _known_values(value, DOCUMENT_KINDS, "document kind")

    @field_validator("published_after", "published_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def is_empty(self) -> bool:
        """True when nothing is constrained."""
        return not (
            self.author
            or self.platforms
            or self.document_kinds
            or self.published_after
            or self.published_before
        )

    def merged(self, override: SearchFilters | None) -> SearchFilters:
        """These filters with every field that `override` sets taking its value."""
        if override is None:
            return SearchFilters(**self.filter_fields())
        mine = self.filter_fields()
        theirs = override.filter_fields()
        return SearchFilters(**{key: theirs[key] or mine[key] for key in mine})

    def filter_fields(self) -> dict[str, Any]:
        """The filter fields only (no query text), as a plain dict."""
        return {name: getattr(self, name) for name in SearchFilters.model_fields}


class ParsedQuery(SearchFilters):
    """A question split into the text to search for and the constraints it stated."""

    text: str = Field(description="the question with constraint phrases removed")
    original: str = ""

    @property
    def filters(self) -> SearchFilters:
        """The constraints alone, ready for `Retriever.search(filters=...)`."""
        return SearchFilters(**self.filter_fields())


QueryExtractor = Callable[[str, Sequence[str], datetime], "ParsedQuery | Mapping[str, Any]"]
"""An alternative constraint extractor: (question, known authors, now) -> ParsedQuery or fields."""

# --- rules ------------------------------------------------------------------------------------

_MARK = "\x00"  # stands in for a removed phrase until the text is tidied
_PREP = r"(?:(?:in|on|from|across|over|within|throughout)\s+)?"
_POSS = r"(?:(?:my|her|his|their|the|your|our|ada's|\w+'s)\s+)?"
_KIND_WORDS = (
    r"(?:posts?|articles?|stories|story|letters?|issues?|updates?|entries|essays?|pieces?)"
)


def _platform_rule(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"\b(?P<lead>{_PREP}{_POSS}){name}(?:\s+(?P<kind>{_KIND_WORDS}|blog\s+posts?))?\b",
        re.IGNORECASE,
    )


def _drop_platform(match: re.Match[str]) -> str:
    """Remove a platform phrase; "Which LinkedIn articles" keeps its noun: "Which articles"."""
    groups = match.groupdict()
    if "lead" in groups and not groups["lead"] and groups.get("kind"):
        return f"{_MARK} {groups['kind']}"
    return _MARK


# Order matters: "Medium blog posts" is Medium, so named platforms go before the blog rule.
_PLATFORM_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("linkedin", _platform_rule(r"linked\s?-?in(?:\s+pulse)?")),
    ("medium", _platform_rule(r"medium")),
    ("substack", _platform_rule(r"substack")),
    (
        "substack",
        re.compile(
            rf"\b(?:(?:in|on|from)\s+{_POSS}newsletters?(?:\s+{_KIND_WORDS})?"
            rf"|newsletter\s+(?:issues?|letters?|posts?))\b",
            re.IGNORECASE,
        ),
    ),
    ("github", _platform_rule(r"git\s?hub")),
    (
        "github",
        re.compile(
            rf"\b(?:in|from|across)\s+{_POSS}(?:repos?|repositor(?:y|ies)|(?:source\s+)?code)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "blog",
        re.compile(
            rf"\b(?:(?:in|on|from|across)\s+{_POSS}(?:personal\s+)?blog(?:\s+{_KIND_WORDS})?"
            rf"|{_POSS}blog\s+{_KIND_WORDS})\b",
            re.IGNORECASE,
        ),
    ),
]

_KIND_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "article",
        re.compile(
            r"\b(?:(?:in|from|across)\s+)?(?:my|her|his|their|the)\s+(?:long(?:er)?(?:-form)?\s+)?"
            r"(?:articles|essays)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "post",
        re.compile(
            r"\b(?:(?:in|from|across)\s+)?(?:my|her|his|their|the)\s+(?:short(?:er)?\s+)?posts\b",
            re.IGNORECASE,
        ),
    ),
    (
        "repository",
        re.compile(
            r"\b(?:(?:in|from|across)\s+)?(?:my|her|his|their|the)\s+repositories\b", re.IGNORECASE
        ),
    ),
]
_KIND_OF_WORD = {"post": "post", "update": "post", "article": "article", "essay": "article"}

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTH = r"(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?:19[89]\d|20\d\d)"
_PERIOD = rf"(?:(?P<{{p}}month>{_MONTH})\s+)?(?P<{{p}}year>{_YEAR})"
_PUBLISHED = r"(?:(?:published|written|posted)\s+)?"
_NUMBER_WORDS = {
    "a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "eighteen": 18,
}  # fmt: skip
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _period(match: re.Match[str], prefix: str) -> tuple[datetime, datetime]:
    """[start, end) of the month or year a date phrase named."""
    year = int(match[f"{prefix}year"])
    month_name = match[f"{prefix}month"]
    if month_name:
        month = _MONTHS[month_name.lower().rstrip(".")]
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return start, end
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def _month_start(moment: datetime, months_back: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 - months_back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


DateRange = tuple[datetime | None, datetime | None]


def _last_period(match: re.Match[str], now: datetime) -> DateRange:
    """'last year' / 'last month' are calendar periods; 'the past 6 months' is a rolling window."""
    unit = match["unit"].lower()
    count = match["n"]
    phrase = match[0].lower()
    rolling = (
        count is not None or "past" in phrase or re.search(r"\b(?:in|over|within) the", phrase)
    )
    if not rolling:
        if unit == "year":
            return datetime(now.year - 1, 1, 1, tzinfo=UTC), datetime(now.year, 1, 1, tzinfo=UTC)
        if unit == "month":
            return _month_start(now, 1), _month_start(now)
        if unit == "week":
            return now - timedelta(days=7), None
        return now - timedelta(days=1), None
    n = int(count) if count and count.isdigit() else _NUMBER_WORDS.get((count or "a").lower(), 1)
    return now - timedelta(days=n * _UNIT_DAYS[unit]), None


def _this_period(match: re.Match[str], now: datetime) -> DateRange:
    """'this year' / 'this month': from the start of the current calendar period."""
    if match["unit"].lower() == "month":
        return _month_start(now), None
    return datetime(now.year, 1, 1, tzinfo=UTC), None


_DATE_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str], datetime], DateRange]]] = [
    (
        re.compile(
            rf"\b{_PUBLISHED}between\s+{_PERIOD.format(p='a')}\s+and\s+{_PERIOD.format(p='b')}\b",
            re.IGNORECASE,
        ),
        lambda m, now: (_period(m, "a")[0], _period(m, "b")[1]),
    ),
    (
        re.compile(
            rf"\b{_PUBLISHED}(?:in|during|throughout|from)\s+{_PERIOD.format(p='')}\b"
            r"(?!\s+(?:on|onwards|onward)\b)",
            re.IGNORECASE,
        ),
        lambda m, now: _period(m, ""),
    ),
    (
        re.compile(
            rf"\b{_PUBLISHED}(?:since|from)\s+{_PERIOD.format(p='')}(?:\s+(?:on|onwards|onward))?\b",
            re.IGNORECASE,
        ),
        lambda m, now: (_period(m, "")[0], None),
    ),
    (
        re.compile(rf"\b{_PUBLISHED}after\s+{_PERIOD.format(p='')}\b", re.IGNORECASE),
        lambda m, now: (_period(m, "")[1], None),
    ),
    (
        re.compile(
            rf"\b{_PUBLISHED}(?:before|until|till|prior\s+to)\s+{_PERIOD.format(p='')}\b",
            re.IGNORECASE,
        ),
        lambda m, now: (None, _period(m, "")[0]),
    ),
    (
        re.compile(
            rf"\b{_PUBLISHED}(?:in\s+|over\s+|during\s+|within\s+)?(?:the\s+)?(?:last|past)\s+"
            r"(?P<n>\d+|" + "|".join(_NUMBER_WORDS) + r")?\s*(?P<unit>day|week|month|year)s?\b",
            re.IGNORECASE,
        ),
        _last_period,
    ),
    (
        re.compile(rf"\b{_PUBLISHED}(?:in\s+|during\s+)?this\s+(?P<unit>month|year)\b", re.I),
        _this_period,
    ),
]


def _author_patterns(known_authors: Sequence[str]) -> list[tuple[str, re.Pattern[str]]]:
    """Name patterns per author: full name, and first/last names no other author shares."""
    token_count: dict[str, int] = {}
    for name in known_authors:
        for token in set(name.lower().split()):
            token_count[token] = token_count.get(token, 0) + 1
    rules = []
    for name in sorted(known_authors, key=len, reverse=True):
        variants = [re.escape(name)]
        variants += [
            re.escape(t) for t in name.split() if token_count[t.lower()] == 1 and len(t) > 2
        ]
        alternatives = "|".join(variants)
        rules.append(
            (
                name,
                re.compile(
                    rf"\b(?:(?:by|from|according\s+to)\s+)?(?:{alternatives})(?:'s|’s)?(?!\w)",
                    re.IGNORECASE,
                ),
            )
        )
    return rules


def _tidy(text: str, original: str) -> str:
    """Remove phrase markers and the connectives and punctuation left dangling around them."""
    text = re.sub(rf"{_MARK}(?:\s*(?:,|or|and|&|/)\s*{_MARK})+", _MARK, text, flags=re.I)
    text = text.replace(_MARK, " ")
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    text = re.sub(r"([,;:])(?=[?.!])", "", text)
    text = re.sub(r"^[\s,;:.-]+", "", text)
    text = re.sub(r"[\s,;:-]+$", "", text)
    text = re.sub(r"\b(?:in|on|from|and|or|by)([?.!]?)$", r"\1", text).strip()
    text = re.sub(r"\s+([?.!])$", r"\1", text)
    if not re.search(r"\w", text):
        return original.strip()
    return text[0].upper() + text[1:] if text[0].islower() else text


def parse_query_rules(
    question: str, known_authors: Sequence[str] | None = None, *, now: datetime | None = None
) -> ParsedQuery:
    """The rule-based reading of `question` (see the module docstring for what is recognised)."""
    now = now or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    text = question
    platforms: list[str] = []
    kinds: list[str] = []

    for platform, pattern in _PLATFORM_RULES:
        for match in list(pattern.finditer(text)):
            platforms.append(platform)
            word = (match.groupdict().get("kind") or "").lower().rstrip("s")
            kind = _KIND_OF_WORD.get(word)
            if kind and len(PLATFORM_KINDS[platform]) > 1 and kind in PLATFORM_KINDS[platform]:
                kinds.append(kind)
        text = pattern.sub(_drop_platform, text)
    for kind, pattern in _KIND_RULES:
        if pattern.search(text):
            kinds.append(kind)
            text = pattern.sub(_MARK, text)

    after: datetime | None = None
    before: datetime | None = None
    for pattern, reader in _DATE_RULES:
        for match in list(pattern.finditer(text)):
            start, end = reader(match, now)
            after = max(after, start) if after and start else (after or start)
            before = min(before, end) if before and end else (before or end)
        text = pattern.sub(_MARK, text)

    author = None
    for name, pattern in _author_patterns(known_authors or []):
        if pattern.search(text):
            author = author or name
            text = pattern.sub(_MARK, text)

    return ParsedQuery(
        text=_tidy(text, question),
        original=question,
        author=author,
        platforms=platforms,
        document_kinds=kinds,
        published_after=after,
        published_before=before,
    )


def parse_query(
    question: str,
    known_authors: list[str] | None = None,
    *,
    now: datetime | None = None,
    extractor: QueryExtractor | None = None,
) -> ParsedQuery:
    """Search text and filters stated in `question`.

    Returns a `ParsedQuery` whose `text` is the question without its constraint phrases (the
    whole question when nothing else is left) and whose filter fields hold what it asked for.
    With an `extractor`, its answer is used when valid; the rules answer otherwise.
    """
    if extractor is not None:
        moment = now or datetime.now(UTC)
        try:
            answer = extractor(question, list(known_authors or []), moment)
            fields = answer.model_dump() if isinstance(answer, BaseModel) else dict(answer)
            fields.setdefault("original", question)
            if not str(fields.get("text") or "").strip():
                fields["text"] = question
            parsed = ParsedQuery(**fields)
            if parsed.author and known_authors and parsed.author not in known_authors:
                raise ValueError(f"unknown author {parsed.author!r}")
            return parsed
        except (ValidationError, ValueError, TypeError, KeyError) as err:
            log.warning("query extractor failed for %r (%s); using the rules", question, err)
        except Exception as err:  # an LLM call may fail in many ways; the rules still answer
            log.warning("query extractor raised for %r (%r); using the rules", question, err)
    return parse_query_rules(question, known_authors, now=now)


# --- expansion --------------------------------------------------------------------------------

# Each entry: an acronym or term, and the phrase that means the same. Expansion adds the other side
# as an alternative query, so a question using either form reaches text that uses the other. Kept
# small on purpose: every entry is a term this corpus writes both ways.
SYNONYMS: tuple[tuple[str, str], ...] = (
    ("RAG", "retrieval augmented generation"),
    ("LoRA", "low-rank adaptation"),
    ("HNSW", "vector index"),
    ("ANN", "approximate nearest neighbour search"),
    ("BM25", "keyword search"),
    ("DPO", "direct preference optimisation"),
    ("SFT", "supervised fine-tuning"),
    ("PII", "personal data"),
    ("LLM", "language model"),
    ("GE", "Great Expectations"),
)


def _term_pattern(term: str) -> re.Pattern[str]:
    flags = 0 if term.isupper() else re.IGNORECASE  # acronyms only in capitals: "rag" is a cloth
    body = r"[\s-]+".join(re.escape(word) for word in re.split(r"[\s-]+", term))
    return re.compile(rf"(?<![\w-]){body}(?![\w-])", flags)


def expand_query(q: str) -> list[str]:
    """`q` first, then one variant per synonym pair it uses, with that term swapped for its pair.

    "How do I tune HNSW?" gives ["How do I tune HNSW?", "How do I tune vector index?"]. Variants
    are distinct and in `SYNONYMS` order; a question with no known term gives `[q]`.
    """
    variants = [q]
    for short, long in SYNONYMS:
        for this, other in ((short, long), (long, short)):
            pattern = _term_pattern(this)
            if pattern.search(q):
                variant = pattern.sub(other, q)
                if variant not in variants:
                    variants.append(variant)
    return variants
