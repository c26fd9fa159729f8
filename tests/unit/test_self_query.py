"""Self-query: constraints read out of a question, and the text left to search for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from twin.rag.query import ParsedQuery, SearchFilters, expand_query, parse_query

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
AUTHORS = ["Ada Lindqvist", "Bo Berg"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("question", "platforms", "kinds", "text"),
    [
        (
            "What did I say about LoRA in my Medium posts?",
            ["medium"],
            [],
            "What did I say about LoRA?",
        ),
        ("How do I chunk posts on LinkedIn?", ["linkedin"], [], "How do I chunk posts?"),
        (
            "Which LinkedIn articles talk about hiring?",
            ["linkedin"],
            ["article"],
            "Which articles talk about hiring?",
        ),
        (
            "What did I write in my newsletter about on-call?",
            ["substack"],
            [],
            "What did I write about on-call?",
        ),
        ("Backfills on Substack", ["substack"], [], "Backfills"),
        (
            "How does the linter in the repo treat datetime.now?",
            ["github"],
            [],
            "How does the linter treat datetime.now?",
        ),
        (
            "What is in my code on GitHub about stale vectors?",
            ["github"],
            [],
            "What is about stale vectors?",
        ),
        ("What are my blog posts about retries?", ["blog"], [], "What are about retries?"),
        ("Postgres upgrades on my blog", ["blog"], [], "Postgres upgrades"),
        (
            "What did I post on Medium or LinkedIn about deduplication?",
            ["linkedin", "medium"],
            [],
            "What did I post about deduplication?",
        ),
        ("Anything on evaluation in my articles?", [], ["article"], "Anything on evaluation?"),
        ("How do I tune an HNSW index?", [], [], "How do I tune an HNSW index?"),
        # one author's newsletter name is another author's topic
        (
            "Why is the boring pipeline the one you can rerun?",
            [],
            [],
            "Why is the boring pipeline the one you can rerun?",
        ),
    ],
)
def test_platforms_and_kinds_are_extracted_and_removed(
    question: str, platforms: list[str], kinds: list[str], text: str
) -> None:
    parsed = parse_query(question, now=NOW)
    assert sorted(parsed.platforms) == sorted(platforms)
    assert parsed.document_kinds == kinds
    assert parsed.text == text


def test_a_kind_word_after_a_single_kind_platform_is_not_a_kind_filter() -> None:
    # Medium stories are articles: "Medium posts" must not filter on kind = post.
    assert parse_query("my Medium posts about chunking", now=NOW).document_kinds == []
    assert parse_query("my LinkedIn posts about chunking", now=NOW).document_kinds == ["post"]


@pytest.mark.parametrize(
    ("question", "after", "before", "text"),
    [
        (
            "What did I write about pgvector in 2023?",
            utc(2023, 1, 1),
            utc(2024, 1, 1),
            "What did I write about pgvector?",
        ),
        ("posts about dbt since 2024", utc(2024, 1, 1), None, "Posts about dbt"),
        ("dbt tests before March 2024", None, utc(2024, 3, 1), "Dbt tests"),
        ("chunking after March 2024", utc(2024, 4, 1), None, "Chunking"),
        ("on-call in June 2024", utc(2024, 6, 1), utc(2024, 7, 1), "On-call"),
        ("retries published between 2023 and 2024", utc(2023, 1, 1), utc(2025, 1, 1), "Retries"),
        (
            "What did I say about LoRA last year?",
            utc(2024, 1, 1),
            utc(2025, 1, 1),
            "What did I say about LoRA?",
        ),
        ("pgvector this year", utc(2025, 1, 1), None, "Pgvector"),
        ("backfills last month", utc(2024, 12, 1), utc(2025, 1, 1), "Backfills"),
        ("evaluation in the past 6 months", utc(2024, 7, 19, 12), None, "Evaluation"),
        ("evaluation over the past year", utc(2024, 1, 16, 12), None, "Evaluation"),
        ("What is error code E-4017?", None, None, "What is error code E-4017?"),
    ],
)
def test_dates_are_read_relative_to_now(
    question: str, after: datetime | None, before: datetime | None, text: str
) -> None:
    parsed = parse_query(question, now=NOW)
    assert (parsed.published_after, parsed.published_before) == (after, before)
    assert parsed.text == text


def test_known_authors_are_recognised_by_full_first_or_possessive_name() -> None:
    assert parse_query("What does Ada Lindqvist think of notebooks?", AUTHORS).author == (
        "Ada Lindqvist"
    )
    parsed = parse_query("Berg's view on pipelines", AUTHORS)
    assert (parsed.author, parsed.text) == ("Bo Berg", "View on pipelines")
    assert parse_query("lindqvist on pgvector", AUTHORS).author == "Ada Lindqvist"
    assert parse_query("What about Adam?", AUTHORS).author is None
    assert parse_query("What does Ada think?", None).author is None


def test_everything_at_once_and_the_filters_view() -> None:
    parsed = parse_query("What did Ada write on LinkedIn about chunking in 2024?", AUTHORS, now=NOW)
    assert parsed.filters == SearchFilters(
        author="Ada Lindqvist",
        platforms=["linkedin"],
        published_after=utc(2024, 1, 1),
        published_before=utc(2025, 1, 1),
    )
    assert parsed.text == "What did write about chunking?"
    assert parsed.original.startswith("What did Ada")


def test_a_question_made_only_of_constraints_keeps_its_words_as_text() -> None:
    parsed = parse_query("my LinkedIn posts from 2024", now=NOW)
    assert parsed.platforms == ["linkedin"] and parsed.published_after == utc(2024, 1, 1)
    assert parsed.text == "my LinkedIn posts from 2024"


def test_explicit_filters_override_what_the_question_said() -> None:
    parsed = parse_query("chunking on Medium in 2023", now=NOW)
    merged = parsed.filters.merged(SearchFilters(platforms=["blog"]))
    assert merged.platforms == ["blog"]
    assert merged.published_after == utc(2023, 1, 1)


def test_an_extractor_replaces_the_rules_and_falls_back_when_it_fails() -> None:
    def extractor(question: str, authors: list[str], now: datetime) -> dict:
        return {"text": "chunking", "platforms": ["substack"], "author": authors[0]}

    parsed = parse_query("anything about chunking", AUTHORS, now=NOW, extractor=extractor)
    assert (parsed.text, parsed.platforms, parsed.author) == (
        "chunking",
        ["substack"],
        "Ada Lindqvist",
    )

    def broken(question: str, authors: list[str], now: datetime) -> dict:
        return {"text": "x", "platforms": ["myspace"]}

    def raising(question: str, authors: list[str], now: datetime) -> ParsedQuery:
        raise TimeoutError("model did not answer")

    for bad in (broken, raising):
        parsed = parse_query("chunking on Medium", AUTHORS, now=NOW, extractor=bad)
        assert (parsed.text, parsed.platforms) == ("Chunking", ["medium"])


def test_unknown_platforms_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown platform"):
        SearchFilters(platforms=["myspace"])


def test_expansion_adds_the_other_form_of_known_terms() -> None:
    assert expand_query("How do I tune HNSW?") == [
        "How do I tune HNSW?",
        "How do I tune vector index?",
    ]
    assert expand_query("What rank for low-rank adaptation?") == [
        "What rank for low-rank adaptation?",
        "What rank for LoRA?",
    ]
    assert expand_query("RAG with LoRA") == [
        "RAG with LoRA",
        "retrieval augmented generation with LoRA",
        "RAG with low-rank adaptation",
    ]
    assert expand_query("a rag doll") == ["a rag doll"]  # acronyms match in capitals only
