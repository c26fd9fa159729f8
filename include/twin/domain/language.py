"""langdetect's detector with its per-character Python loops written as whole-string operations.

`langdetect.Detector` reads a text one character at a time three times (appending, cleaning,
cutting n-grams, normalising each character through a chain of Unicode-block tests) and updates
55 probabilities with an index loop per sampled n-gram: about 5 ms for a 2,500-character
document, most of the warehouse enrichment's time. `Detector` below cuts each distinct word's
n-grams once (an n-gram never spans a space) and runs the trials on an array of probabilities:
about 1.4 ms. It gives the same n-gram list in the same order, the same random draws and the
same floating-point operations in the same order, so the same probabilities
(tests/unit/test_language_detection.py compares the two on every script the profiles know).
Only the methods named here differ from langdetect 1.0.9.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from langdetect import detector_factory
from langdetect.detector import Detector as LangdetectDetector
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.language import Language
from langdetect.utils.ngram import NGram

SPACE_RUNS = re.compile(" {2,}")
LATIN = re.compile("[A-z]")  # langdetect's test: 'A' <= ch <= 'z'
# Characters at or above U+0300. langdetect means to leave out the Latin Extended Additional
# block, but compares the block's number with its name, so it never does; neither does this.
NON_LATIN = re.compile("[\u0300-\U0010ffff]")
WORD_CACHE_SIZE = 200_000  # words remembered with their n-grams (per profile map)


class _Normalised(dict):
    """`str.translate` table: each character as `NGram.normalize` maps it, computed once."""

    def __missing__(self, code: int) -> str:
        self[code] = value = NGram.normalize(chr(code))
        return value


_NORMALISE = _Normalised()


class Detector(LangdetectDetector):
    """langdetect's detector, same results, faster on long texts (see the module docstring)."""

    def append(self, text: str) -> None:
        text = self.URL_RE.sub(" ", text)
        text = self.MAIL_RE.sub(" ", text)
        text = NGram.normalize_vi(text)
        # a space right after a space is dropped (langdetect compares with the previous input
        # character, so a run of spaces becomes one)
        self.text += SPACE_RUNS.sub(" ", text[: self.max_text_length])

    def cleaning_text(self) -> None:
        if self.text.isascii():  # no character at or above U+0300: nothing to clean
            return
        latin, non_latin = len(LATIN.findall(self.text)), len(NON_LATIN.findall(self.text))
        if latin * 2 < non_latin:
            self.text = "".join(ch for ch in self.text if ch < "A" or ch > "z")

    def _extract_ngrams(self) -> list[str]:
        # An n-gram never spans a space, so the list is each word's n-grams in text order; a
        # word's own (with the space after it, if any) are cut once and remembered.
        profile = _profile(self.word_lang_prob_map)
        cache = profile.words
        found: list[str] = []
        words = self.text.translate(_NORMALISE).split(" ")
        last = len(words) - 1
        for i, word in enumerate(words):
            if not word:
                continue
            key = (word, i < last)
            grams = cache.get(key)
            if grams is None:
                grams = cache[key] = _word_ngrams(word + " " if i < last else word, profile.known)
            found += grams
        if len(cache) > WORD_CACHE_SIZE:
            cache.clear()
        return found

    def _detect_block(self) -> None:
        # langdetect's trials with the probabilities as one array: the same random draws in the
        # same order, and the same float operations (`np.cumsum` adds left to right like `sum`).
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        profile = _profile(self.word_lang_prob_map)
        size = len(self.langlist)
        langprob = np.zeros(size)
        self.random.seed(self.seed)
        for _ in range(self.n_trial):
            prob = (
                np.array(self.prior_map, dtype=np.float64)
                if self.prior_map is not None
                else np.full(size, 1.0 / size)
            )
            alpha = self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            weight = alpha / self.BASE_FREQ
            i = 0
            while True:
                prob *= weight + profile.probabilities(self.random.choice(ngrams))
                if i % 5 == 0:
                    prob /= prob.cumsum()[-1]
                    if prob.max() > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                        break
                i += 1
            langprob += prob / self.n_trial
        self.langprob = langprob.tolist()


def _word_ngrams(word: str, known: dict) -> list[str]:
    """The n-grams langdetect cuts from `word` (no space in it but maybe one at its end), read
    from a space, that its profiles know."""
    found: list[str] = []
    grams, capital = " ", False
    for ch in word:
        last = grams[-1]
        if len(grams) >= NGram.N_GRAM:
            grams = grams[1:]
        grams += ch
        capital = (capital or last.isupper()) if ch.isupper() else False
        if capital:
            continue
        if ch != " " and ch in known:
            found.append(ch)
        if grams[-2:] in known:
            found.append(grams[-2:])
        if len(grams) == 3 and grams in known:
            found.append(grams)
    return found


@dataclass
class _Profile:
    """What is remembered per profile map (langdetect's factory holds one): each word's n-grams
    and each n-gram's probabilities as an array."""

    known: dict
    words: dict[tuple[str, bool], list[str]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def probabilities(self, gram: str) -> np.ndarray:
        found = self.arrays.get(gram)
        if found is None:
            found = self.arrays[gram] = np.array(self.known[gram], dtype=np.float64)
        return found


_PROFILES: dict[int, _Profile] = {}


def _profile(known: dict) -> _Profile:
    found = _PROFILES.get(id(known))
    if found is None or found.known is not known:
        found = _PROFILES[id(known)] = _Profile(known)
    return found


def detect_langs(text: str) -> list[Language]:
    """`langdetect.detect_langs` through the detector above (its profiles, its seed)."""
    detector_factory.init_factory()
    detector = Detector(detector_factory._factory)
    detector.append(text)
    return detector.get_probabilities()
