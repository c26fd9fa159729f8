"""The evaluation's measures of voice and of a writer's failures (loops, stock phrases, copying,
ungrounded answers) behave as a reader would judge the texts."""

from __future__ import annotations

from twin.training import style

AUTHOR = [
    "I ran the backfill on a Tuesday. It took 41 minutes. Nobody noticed, which was the point.",
    "We deleted 23 percent of our chunks. Recall went up. I did not expect that, and I checked.",
    "Count the rows. Then count them again, after the join. If the numbers differ, stop.",
    "Postgres did the job. It usually does. I keep a list of the times it did not; it is short.",
    "Retries are cheap. Pages at 3 a.m. are not. I wrote the runbook so nobody else has to.",
]
# the same topics as the author, in the generic assistant voice
GENERIC_ON_TOPIC = [
    "I'm thrilled to announce that backfills are a crucial part of the ever-evolving world of "
    "data pipelines, and in today's fast-paced environment it is important to note their value.",
    "In this article, we will delve into the power of Postgres and explore how it plays a crucial "
    "role in unlocking the full potential of modern data platforms for everyone involved.",
]
# the author's voice on topics she never wrote about
AUTHOR_OFF_TOPIC = [
    "I retired the dashboard on a Friday. Nobody asked. Two people opened it last year, both me.",
    "The invoice had 212 lines. I read all of them. Four were ours, which was the bad news.",
]


def test_topic_masking_keeps_function_words_punctuation_and_number_shapes() -> None:
    assert (
        style.mask_topic("I ran the backfill on 3 Tuesdays.") == "i *** the ******** on # ********."
    )


def test_voice_similarity_reads_voice_not_topic() -> None:
    author_voice = style.voice_similarity(AUTHOR_OFF_TOPIC, AUTHOR)
    generic_voice = style.voice_similarity(GENERIC_ON_TOPIC, AUTHOR)
    assert min(author_voice) > max(generic_voice)
    # raw character n-grams are pulled by the shared topic words; the masked ones are not
    raw_gap = min(style.char_similarity(AUTHOR_OFF_TOPIC, AUTHOR)) - max(
        style.char_similarity(GENERIC_ON_TOPIC, AUTHOR)
    )
    assert min(author_voice) - max(generic_voice) > raw_gap


def test_function_word_profile_prefers_the_authors_own_writing() -> None:
    author = style.function_word_similarity(AUTHOR_OFF_TOPIC, AUTHOR)
    generic = style.function_word_similarity(GENERIC_ON_TOPIC, AUTHOR)
    assert sum(author) / len(author) > sum(generic) / len(generic)


def test_repeat_rate_sees_a_loop_and_not_plain_prose() -> None:
    loop = "The test was designed to test a feature. " * 4
    assert style.repeat_rate(loop) > 0.5
    assert style.repeat_rate(AUTHOR[0]) == 0.0
    assert style.repeats_a_sentence(loop) and not style.repeats_a_sentence(AUTHOR[1])
    assert style.author_repeat_rate(AUTHOR, 10) < 0.05


def test_stock_phrases_are_learned_from_the_base_and_never_the_authors() -> None:
    base = [
        "I'm excited to share my thoughts on the future of data. It is a new frontier.",
        "I'm excited to share that the future of data is here. We count the rows.",
        "The future of data is bright, and I'm excited to share it.",
    ]
    phrases = style.learn_stock_phrases(base, AUTHOR)
    assert "the future of data" in phrases and "i'm excited to share" in phrases
    assert "count the rows" not in phrases  # the author's own phrase is never stock
    assert style.has_stock_phrase(base[0], phrases)
    assert not any(style.has_stock_phrase(text, phrases) for text in AUTHOR)


def test_copy_rate_counts_long_verbatim_runs_of_training_text() -> None:
    grams = style.ngram_set(AUTHOR)
    copied = "As she said: We deleted 23 percent of our chunks. Recall went up. Fine."
    assert style.copy_rate(copied, grams) > 0.3
    assert style.copy_rate(AUTHOR_OFF_TOPIC[0], grams) == 0.0


def test_groundedness_is_the_share_of_content_words_found_in_the_passage() -> None:
    passage = "The Tuesday test: could a new engineer rerun this pipeline on a Tuesday, alone?"
    grounded = "A new engineer reruns the pipeline alone on a Tuesday."
    assert style.groundedness(grounded, passage) == 0.8  # all but "reruns" (5 content words)
    assert style.groundedness("Kubernetes operators reconcile custom resources.", passage) == 0.0


def test_the_voice_classifier_scores_the_authors_voice_above_the_generic_one() -> None:
    base_answers = [
        "In today's fast-paced world, it is important to note that teamwork plays a crucial role.",
        "I'm thrilled to announce that our journey has been an incredible adventure for everyone.",
        "Let's dive into the ever-evolving landscape of innovation and unlock its full potential.",
        "As we navigate this exciting era, collaboration remains the key to unlocking success.",
    ]
    voice = style.VoiceModel(AUTHOR, base_answers)
    author, generic = voice.score(AUTHOR_OFF_TOPIC), voice.score(GENERIC_ON_TOPIC)
    assert min(author) > 0.5 > max(generic)
