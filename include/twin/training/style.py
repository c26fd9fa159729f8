"""Measures of voice that do not read topic, and of the ways a small model fails as a writer.

- `VoiceModel.score` (`voice_score`): the probability an answer is the author's, from a classifier
  of her corpus against the base model's answers (to other prompts) on topic-masked character
  n-grams; the headline voice figure and the gate's.
- `voice_similarity`: character 2-4-gram TF-IDF over *topic-masked* text (Stamatatos' text
  distortion: every word outside the most frequent English function words becomes one `*` per
  letter, digits `#`), cosine of each answer to the centroid of the author's corpus. What is left
  is sentence length, punctuation, function words, word lengths and numbers: how someone writes,
  not what about, so a prompt on an unseen topic is judged on voice alone.
- `char_similarity`: the same on unmasked text (reads topic as well; kept for comparison).
- `function_word_similarity`: cosine of relative function-word frequencies.
- `repeat_rate`: share of an answer's word 4-grams that repeat an earlier one in it (loops).
- `stock_phrase_rate`: share of answers using a phrase the author never uses and the base model
  does (openers such as "I'm thrilled to announce", clichés), learned by `learn_stock_phrases`.
- `copy_rate`: share of an answer's word 8-grams found verbatim in the training text.
- `groundedness`: share of an answer's content words present in the passage it was given.

Pure functions over strings; numpy and scikit-learn only.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

WORD_RE = re.compile(r"[A-Za-z0-9']+")
TOKEN_RE = re.compile(r"[A-Za-z]+|\d")
# The most frequent English function words (pronouns, determiners, auxiliaries, prepositions,
# conjunctions, common adverbs): the words topic masking keeps.
FUNCTION_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each even ever every
    few for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just least less let like may me might more most much must my myself
    never no nor not now of off often on once only or other our ours ourselves out over own same
    she should so some still such than that the their theirs them themselves then there these
    they this those though through to too under until up us very was we were what when where
    which while who whom whose why will with within without would yet you your yours yourself
    yourselves don't doesn't didn't isn't aren't wasn't weren't won't can't couldn't shouldn't
    i'm i've i'd i'll you're you've we're we've it's that's there's here's let's one two first
    next last new old good bad well really always sometimes usually
    """.split()  # noqa: SIM905
)
REPEAT_N = 4
COPY_N = 8
STOCK_MIN_ANSWERS = 2
# Phrases of the generic assistant voice, kept when the author's corpus never uses them; the base
# model's own frequent phrases (`learn_stock_phrases`) are added to these.
STOCK_SEEDS = (
    "i'm thrilled",
    "i'm excited",
    "excited to share",
    "thrilled to announce",
    "i am excited",
    "i am thrilled",
    "in today's fast-paced",
    "in today's world",
    "in this article",
    "in conclusion",
    "game changer",
    "game-changer",
    "let's dive",
    "dive into",
    "delve into",
    "as an ai",
    "it's important to note",
    "it is important to note",
    "it is essential",
    "plays a crucial role",
    "a crucial role",
    "ever-evolving",
    "ever evolving",
    "unlock the",
    "harness the power",
    "the power of",
    "stay tuned",
    "i hope this helps",
    "here are some",
    "here's a",
    "here is a",
    "complex topic",
    "deserves careful attention",
    "title:",
)


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD_RE.findall(text)]


def mask_topic(text: str) -> str:
    """The text with every word outside `FUNCTION_WORDS` replaced by `*` per letter and every
    digit by `#` (punctuation, spacing and function words kept)."""

    def mask(match: re.Match[str]) -> str:
        word = match.group(0)
        if word.isdigit():
            return "#" * len(word)
        return word.lower() if word.lower() in FUNCTION_WORDS else "*" * len(word)

    return re.sub(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+", mask, text)


@functools.lru_cache(maxsize=4)
def _corpus_space(corpus: tuple[str, ...]) -> tuple[Any, np.ndarray]:
    """The character 2-4-gram TF-IDF space fitted on `corpus`, and the corpus' unit centroid
    in it (kept: an evaluation scores many answer sets against one corpus)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(2, 4), sublinear_tf=True, min_df=2)
    vectorizer.fit(list(corpus))
    centroid = np.asarray(vectorizer.transform(list(corpus)).mean(axis=0)).ravel()
    centroid /= np.linalg.norm(centroid) or 1.0
    return vectorizer, centroid


def _tfidf_similarity(answers: Sequence[str], corpus: Sequence[str]) -> list[float]:
    """Cosine of each answer's character 2-4-gram TF-IDF vector to the corpus centroid."""
    vectorizer, centroid = _corpus_space(tuple(corpus))
    vectors = vectorizer.transform([a or " " for a in answers])  # rows are L2-normalised
    return [float(v) for v in vectors @ centroid]


def voice_similarity(answers: Sequence[str], corpus: Sequence[str]) -> list[float]:
    """Per answer: topic-masked character n-gram similarity to the author's corpus."""
    return _tfidf_similarity([mask_topic(a) for a in answers], [mask_topic(c) for c in corpus])


class VoiceModel:
    """A classifier of the author's writing against the base model's, on topic-masked character
    2-4-grams (function words, punctuation and word shapes only): `score` is the probability an
    answer is the author's. Fitted on the corpus and the base's answers to prompts other than
    the ones scored, so it separates voices, not topics or prompts."""

    def __init__(self, corpus: Sequence[str], base_answers: Sequence[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        texts = [mask_topic(t) for t in (*corpus, *base_answers)]
        labels = [1] * len(corpus) + [0] * len(base_answers)
        self.vectorizer = TfidfVectorizer(
            analyzer="char", ngram_range=(2, 4), sublinear_tf=True, min_df=2
        )
        features = self.vectorizer.fit_transform(texts)
        self.classifier = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        self.classifier.fit(features, labels)

    def score(self, answers: Sequence[str]) -> list[float]:
        """Per answer: the probability it was written by the author (0 to 1)."""
        features = self.vectorizer.transform([mask_topic(a or " ") for a in answers])
        return [float(p) for p in self.classifier.predict_proba(features)[:, 1]]


def char_similarity(answers: Sequence[str], corpus: Sequence[str]) -> list[float]:
    """Per answer: character n-gram similarity on the raw text (topic included)."""
    return _tfidf_similarity(answers, corpus)


def function_word_profile(texts: Iterable[str]) -> np.ndarray:
    """Relative frequency of each function word among all words of `texts`."""
    vocabulary = sorted(FUNCTION_WORDS)
    index = {w: i for i, w in enumerate(vocabulary)}
    counts = np.zeros(len(vocabulary))
    total = 0
    for text in texts:
        tokens = words(text)
        total += len(tokens)
        for token in tokens:
            if token in index:
                counts[index[token]] += 1
    return counts / max(total, 1)


def function_word_similarity(answers: Sequence[str], corpus: Sequence[str]) -> list[float]:
    """Per answer: cosine of its function-word profile to the corpus'."""
    reference = function_word_profile(corpus)
    out = []
    for answer in answers:
        profile = function_word_profile([answer])
        denom = float(np.linalg.norm(profile) * np.linalg.norm(reference))
        out.append(float(profile @ reference) / denom if denom else 0.0)
    return out


def repeat_rate(text: str, n: int = REPEAT_N) -> float:
    """Share of the text's word n-grams that already occurred earlier in it (0: no loop)."""
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def author_repeat_rate(corpus: Sequence[str], answer_words: int) -> float:
    """The author's own `repeat_rate` over spans of `answer_words` words (the models' answer
    length), so a loop is judged against how much the author repeats herself at that length."""
    rates = []
    for text in corpus:
        tokens = WORD_RE.findall(text)
        for start in range(0, max(len(tokens) - answer_words, 0) + 1, max(answer_words, 1)):
            span = tokens[start : start + answer_words]
            if len(span) >= REPEAT_N + 1:
                rates.append(repeat_rate(" ".join(span)))
    return float(np.mean(rates)) if rates else 0.0


def _phrases(text: str, sizes: Sequence[int] = (2, 3, 4)) -> set[str]:
    tokens = words(text)
    return {" ".join(tokens[i : i + n]) for n in sizes for i in range(len(tokens) - n + 1)}


def _opener(text: str, n: int = 3) -> str:
    return " ".join(words(text)[:n])


def learn_stock_phrases(
    base_answers: Sequence[str], corpus: Sequence[str], limit: int = 200
) -> list[str]:
    """Phrases the author never uses: the seed clichés absent from the corpus, plus the base
    model's 3-4-word phrases and 3-word openers found in at least `STOCK_MIN_ANSWERS` of its
    answers and nowhere in the corpus, that are not made of function words only."""
    corpus_text = " " + " ".join(" ".join(words(c)) for c in corpus) + " "
    corpus_norm = " ".join(c.lower() for c in corpus)

    def unused(phrase: str) -> bool:
        return f" {phrase} " not in corpus_text and phrase not in corpus_norm

    counts: Counter[str] = Counter()
    for answer in base_answers:
        found = _phrases(answer, (3, 4)) | ({_opener(answer)} if _opener(answer) else set())
        counts.update(found)
    learned = [
        p
        for p, n in counts.most_common()
        if n >= STOCK_MIN_ANSWERS and unused(p) and not all(w in FUNCTION_WORDS for w in p.split())
    ]
    seeds = [s for s in STOCK_SEEDS if unused(s)]
    return list(dict.fromkeys(seeds + learned))[: limit + len(seeds)]


def has_stock_phrase(answer: str, phrases: Sequence[str]) -> bool:
    """Whether the answer uses any of `phrases` (word-bounded, case-insensitive)."""
    normal = " " + " ".join(words(answer)) + " "
    lower = answer.lower()
    return any(
        f" {p} " in normal or (not p.replace(" ", "").isalnum() and p in lower) for p in phrases
    )


def copy_rate(answer: str, training_grams: set[tuple[str, ...]], n: int = COPY_N) -> float:
    """Share of the answer's word n-grams found verbatim in the training text."""
    tokens = words(answer)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return sum(g in training_grams for g in grams) / len(grams)


def ngram_set(texts: Iterable[str], n: int = COPY_N) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for text in texts:
        tokens = words(text)
        out.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def groundedness(answer: str, passage: str) -> float:
    """Share of the answer's content words (outside `FUNCTION_WORDS`, 3+ letters) that occur in
    the passage; 0 for an answer without content words."""
    content = [w for w in words(answer) if w not in FUNCTION_WORDS and len(w) >= 3]
    if not content:
        return 0.0
    available = set(words(passage))
    return sum(w in available for w in content) / len(content)


def repeats_a_sentence(text: str) -> bool:
    """Whether any sentence (normalised) occurs twice in the text."""
    seen = set()
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        key = " ".join(words(sentence))
        if len(key.split()) < 3:
            continue
        if key in seen:
            return True
        seen.add(key)
    return False
