"""Whose passages twin_rag searches when a query names no author."""

from twin.serving.rag_service import answering_author
from twin.serving.repository import RAG_SETTINGS_FIELDS


def test_a_query_without_an_author_searches_the_platforms_author() -> None:
    # another author in the same index is never mixed into the platform's twin
    assert answering_author("Ines Okafor", ["Ada Lindqvist", "Ines Okafor"]) == "Ines Okafor"
    assert answering_author("Ines Okafor", ["Ada Lindqvist"]) == "Ada Lindqvist"
    assert answering_author("Ines Okafor", ["Ada Lindqvist", "Bo Berg"]) is None


def test_twin_rag_is_given_the_platforms_author() -> None:
    assert "author" in RAG_SETTINGS_FIELDS
