"""Topic-held-out prompts: the sample author's own set comes through the entry point, covers her
platforms and none of her topics; any other author gets a generated set in their platforms'
forms on topics their corpus never touches."""

from __future__ import annotations

import re

from sample_author.content import AUTHOR, load_documents
from twin.training.style_prompts import TOPICS, author_prompts, covered, generated_prompts


def test_the_sample_author_offers_at_least_24_prompts_on_her_platforms() -> None:
    docs = load_documents()
    corpus = [d.body for d in docs]
    prompts, origin = author_prompts(AUTHOR.name, corpus, [d.platform for d in docs])
    assert origin == "offered" and len(prompts) >= 24
    assert {p.platform for p in prompts} <= {d.platform for d in docs}
    assert len({p.platform for p in prompts}) >= 4
    titles = " ".join(d.title.lower() for d in docs)
    for prompt in prompts:
        assert prompt.topic and prompt.topic.lower() not in titles


def test_another_author_gets_generated_prompts_on_topics_absent_from_their_corpus() -> None:
    corpus = [
        "My dashboard review is every Monday. The invoice totals go in a spreadsheet.",
        "Flaky tests get one retry, then a ticket. Our wiki has a page for each one.",
    ]
    prompts, origin = author_prompts("Someone Else", corpus, ["medium", "linkedin"])
    assert origin == "generated" and len(prompts) == 24
    assert {p.platform for p in prompts} == {"medium", "linkedin"}
    assert any(p.prompt.startswith("Write a LinkedIn post about") for p in prompts)
    text = " ".join(corpus).lower()
    keys = dict(TOPICS)
    for prompt in prompts:
        assert not covered(keys[prompt.topic], text)
    used = {p.topic for p in prompts}
    assert not used & {"retiring a dashboard nobody opened in a year", "keeping a team wiki alive"}


def test_generated_prompts_never_name_a_topic_word_of_the_corpus() -> None:
    corpus = [" ".join(keys) for _, keys in TOPICS[:30]]  # covers the first 30 topics
    prompts = generated_prompts(corpus, ["blog"])
    assert len(prompts) == len(TOPICS) - 30
    for prompt in prompts:
        assert not re.search(re.escape(prompt.topic), " ".join(corpus))
        assert prompt.prompt.startswith("Write the first paragraphs of a blog post about")
