"""Pure logic of the datasets stage: sections, sign-offs, length matching, splits, filters."""

from __future__ import annotations

import pytest

from sample_author import load_documents
from sample_author.questions import QUESTIONS
from twin.datasets.build import DatasetOptions, split_of
from twin.datasets.filters import (
    Decontaminator,
    DropCounter,
    drop_near_duplicates,
    find_pii,
)
from twin.datasets.labelled import load_questions
from twin.datasets.preference import (
    balance_pair,
    closing_paragraphs,
    lengths_match,
    strip_signoff,
)
from twin.datasets.sources import MartDocument, split_sections
from twin.datasets.tasks import dataset_options
from twin.domain.samples import Split


def doc(body: str, kind: str = "article", platform: str = "medium") -> MartDocument:
    return MartDocument(
        document_id="d1",
        author="A",
        platform=platform,
        document_kind=kind,
        title="T",
        body=body,
        clean_hash="h",
    )


def test_articles_split_on_headings_with_their_path_and_code_fences_are_not_headings() -> None:
    body = (
        "Intro text.\n\n## First\n\nAlpha.\n\n### Deeper\n\nBeta.\n\n"
        "```python\n# not a heading\nx = 1\n```\n\n## Second\n\nGamma."
    )
    sections = split_sections(doc(body))
    assert [s.path for s in sections] == ["", "First", "First › Deeper", "Second"]
    assert "# not a heading" in sections[2].text
    assert split_sections(doc(body, kind="post"))[0].text == body.strip()


def test_repository_files_start_their_own_heading_tree() -> None:
    body = "# tool\n\nReadme.\n\n### docs/rules.md\n\n# Rules\n\nOne.\n\n## Two\n\nTwo."
    paths = [s.path for s in split_sections(doc(body, kind="repository", platform="github"))]
    assert paths == ["tool", "docs/rules.md › Rules", "docs/rules.md › Rules › Two"]


def test_sections_and_chunks_read_fences_and_file_headings_alike() -> None:
    body = (
        "Intro.\n\n~~~\n# inside a tilde fence\n```\n# still inside\n~~~\n\n## Real\n\nText.\n\n"
        "## File: `src/x.py`\n\ndef f():\n    pass\n\n### Makefile\n\nall:\n\techo"
    )
    article = [s.path for s in split_sections(doc(body))]
    assert article == ["", "Real", "File: `src/x.py`", "File: `src/x.py` › Makefile"]
    repository = [s.path for s in split_sections(doc(body, kind="repository", platform="github"))]
    assert repository == ["", "Real", "src/x.py", "Makefile"]


def test_long_sections_are_cut_at_paragraphs_without_losing_text() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 80 for i in range(12)]
    sections = split_sections(doc("## Long\n\n" + "\n\n".join(paragraphs)), max_chars=1200)
    assert len(sections) > 1
    assert all(len(s.text) <= 1200 for s in sections)
    assert " ".join(s.text for s in sections).split() == " ".join(paragraphs).split()


SAMPLE_DOCS = load_documents()


def test_the_sample_authors_sign_offs_are_learned_and_stripped() -> None:
    signatures = closing_paragraphs(d.body for d in SAMPLE_DOCS)
    assert "ship the boring version first." in signatures
    letter = next(d for d in SAMPLE_DOCS if d.slug == "preference-data-is-harder")
    stripped = strip_signoff(letter.body, signatures)
    assert not stripped.startswith("Hi friends")
    assert stripped.endswith("Reply any time.") or stripped.endswith("length bias.")
    assert "— Ada" not in stripped and "Ship the boring version first" not in stripped
    post = next(d for d in SAMPLE_DOCS if d.platform == "linkedin" and "#" in d.body)
    assert "#" not in strip_signoff(post.body, signatures).splitlines()[-1]


def test_pairs_are_trimmed_at_sentences_to_within_twenty_percent() -> None:
    chosen = " ".join(f"Sentence number {i} says something true." for i in range(20))
    rejected = "A generic answer that is rather short but still a real answer to it. " * 4
    pair = balance_pair(chosen, rejected)
    assert pair.reason is None
    assert lengths_match(pair.chosen, pair.rejected)
    assert chosen.startswith(pair.chosen) and pair.chosen.endswith(".")


def test_pairs_that_cannot_be_balanced_or_are_near_identical_are_dropped() -> None:
    chosen = "This is one very long sentence " + "that keeps going " * 40 + "until the end."
    assert balance_pair(chosen, "Short reply.").reason == "preference_length_mismatch"
    text = " ".join(
        f"Step {i} of the load writes batch {i * 7} and then checks it." for i in range(12)
    )
    same = text.replace("Step 3 ", "Stage 3 ")
    assert balance_pair(text, same).reason == "preference_near_identical"


def test_splits_are_by_document_deterministic_and_near_the_share() -> None:
    ids = [f"doc-{i}" for i in range(2000)]
    splits = [split_of(i, 0.1) for i in ids]
    assert splits == [split_of(i, 0.1) for i in ids]
    assert 0.07 < splits.count(Split.TEST) / len(ids) < 0.13
    assert all(split_of(i, 0.0) == Split.TRAIN for i in ids[:50])


def test_decontamination_catches_a_copied_evaluation_question() -> None:
    questions = [q.question for q in load_questions(QUESTIONS).questions]
    assert len(questions) >= 10
    guard = Decontaminator.build(questions, ["the held out answer talks about " + "x y z " * 5])
    copied = questions[1]
    assert guard.reason(f"Answer this: {copied}", "Some answer.") == "decontamination_eval_question"
    assert guard.reason("Write a LinkedIn post about pipelines.", "Some answer.") is None
    leaked = "as the held out answer talks about x y z x y z"
    assert guard.reason("Tell me.", leaked) == "decontamination_test_split"


def test_pii_detector_finds_emails_phones_and_keys_but_not_placeholders() -> None:
    assert find_pii("write to ada@lindqvist.example today") == ["email"]
    assert find_pii("call +46 70 123 45 67") == ["phone"]
    assert find_pii("token sk-abcdefghijklmnopqrstuvwx") == ["secret"]
    assert find_pii("api_key = 'abcd1234efgh5678'") == ["secret"]
    assert find_pii("Thanks,\nMaria Svensson") == ["name"]
    assert find_pii("my email is [EMAIL] and phone [PHONE]") == []


def test_near_duplicates_across_documents_keep_the_first() -> None:
    base = " ".join(f"word{i}" for i in range(200))
    items = [("a", base), ("b", base.replace("word7 ", "other ")), ("c", "unrelated " * 50)]
    drops = DropCounter()
    kept = drop_near_duplicates(items, lambda x: x[1], drops, group=lambda x: x[0])
    assert [k[0] for k in kept] == ["a", "c"]
    assert drops.as_dict() == {"near_duplicate": 1}


def test_params_are_validated_with_the_param_named() -> None:
    ok = dataset_options({"author": "Ada", "generator": "offline"})
    assert DatasetOptions.model_validate(ok).test_share == 0.1
    with pytest.raises(ValueError, match="Param test_share"):
        dataset_options({"author": "Ada", "test_share": 0.9})
    with pytest.raises(ValueError, match="Param generator"):
        dataset_options({"author": "Ada", "generator": "gpt"})
    with pytest.raises(ValueError, match="max_instructions"):
        dataset_options({"author": "Ada", "generator": "smollm2", "max_instructions": 0})


def test_local_model_replies_that_echo_the_prompt_are_refused() -> None:
    from twin.datasets.generators.local import clean_instruction

    assert clean_instruction("Question: How do I make reruns safe?") == (
        "How do I make reruns safe?",
        None,
    )
    for reply in ("What is the answer to this question?", "What changed?", "The text says:", ""):
        assert clean_instruction(reply)[0] is None
