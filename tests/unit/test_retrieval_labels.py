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


def test_the_paraphrase_set_is_labelled_split_and_reworded() -> None:
    import re

    from sample_author.content import REPOS_DIR, load_documents
    from sample_author.questions import PARAPHRASES

    labelled = load_questions(PARAPHRASES)
    documents = {f"{d.platform}/{d.slug}": d for d in load_documents()}
    titles = {key: d.title for key, d in documents.items()}
    titles |= {f"github/{p.name}": p.name for p in REPOS_DIR.iterdir() if p.is_dir()}
    splits = [[t for t in q.tags if t in ("dev", "test")] for q in labelled.questions]
    assert len(labelled.questions) >= 40
    assert all(len(s) == 1 for s in splits), "each question is in exactly one split"
    assert min(sum(s == [name] for s in splits) for name in ("dev", "test")) >= 20

    def words(text: str) -> set[str]:
        return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 5}

    for q in labelled.questions:
        assert q.relevant and all(key in titles for key in q.relevant), q.id
        for key in q.relevant:
            assert not words(q.question) & words(titles[key]), (q.id, key)
    posts = {
        key
        for q in labelled.questions
        for key in q.relevant
        if key.startswith("linkedin/") and documents[key].kind == "post"
    }
    assert posts and set(labelled.url_aliases) == posts
    for key in posts:
        slug = key.split("/", 1)[1]
        alias = labelled.url_aliases.get(key)
        assert alias and url_names_key("linkedin", slug, share_link(slug), alias=alias), key
