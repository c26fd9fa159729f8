"""The labelled retrieval set resolves against the sample site's real addresses."""

from __future__ import annotations

from sample_author.linkedin import share_link
from sample_author.questions import QUESTIONS
from twin.rag.evaluate import load_questions, url_names_key


def test_every_linkedin_alias_is_the_share_id_of_its_post() -> None:
    labelled = load_questions(QUESTIONS)
    linkedin_keys = {
        key for q in labelled.questions for key in q.relevant if key.startswith("linkedin/")
    }
    assert linkedin_keys and set(labelled.url_aliases) == linkedin_keys
    for key, alias in labelled.url_aliases.items():
        slug = key.split("/", 1)[1]
        assert url_names_key("linkedin", slug, share_link(slug), alias=alias), key


def test_an_alias_does_not_match_another_post() -> None:
    labelled = load_questions(QUESTIONS)
    (first, alias), (second, _) = list(labelled.url_aliases.items())[:2]
    other = share_link(second.split("/", 1)[1])
    assert not url_names_key("linkedin", first.split("/", 1)[1], other, alias=alias)
