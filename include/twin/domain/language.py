"""langdetect's detector with its per-character Python loops written as whole-string operations.

`langdetect.Detector` reads a text one character at a time three times (appending, cleaning,
cutting n-grams, normalising each character through a chain of Unicode-block tests) and updates
55 probabilities with an index loop per sampled n-gram: about 5 ms for a 2,500-character
document, most of the warehouse enrichment's time. `Detector` below gives the same n-gram list
in the same order, the same random draws and the same floating-point operations in the same
order, so the same probabilities (tests/unit/test_language_detection.py compares the two on
every script the profiles know). Only the methods named here differ from langdetect 1.0.9.
"""

from __future__ import annotations

import re

from langdetect import detector_factory
from langdetect.detector import Detector as LangdetectDetector
from langdetect.language import Language
from langdetect.utils.ngram import NGram

SPACE_RUNS = re.compile(" {2,}")
LATIN = re.compile("[A-z]")  # langdetect's test: 'A' <= ch <= 'z'
# Characters at or above U+0300. langdetect means to leave out the Latin Extended Additional
# block, but compares the block's number with its name, so it never does; neither does this.
NON_LATIN = re.compile("[\u0300-\U0010ffff]")


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
        latin, non_latin = len(LATIN.findall(self.text)), len(NON_LATIN.findall(self.text))
        if latin * 2 < non_latin:
            self.text = "".join(ch for ch in self.text if ch < "A" or ch > "z")

    def _extract_ngrams(self) -> list[str]:
        known = self.word_lang_prob_map
        found: list[str] = []
        grams, capital = " ", False
        for ch in self.text.translate(_NORMALISE):
            last = grams[-1]
            if last == " ":
                grams, capital = " ", False
                if ch == " ":
                    continue
            elif len(grams) >= NGram.N_GRAM:
                grams = grams[1:]
            grams += ch
            capital = (capital or last.isupper()) if ch.isupper() else False
            if capital:
                continue
            if ch != " " and ch in known:
                found.append(ch)
            if len(grams) >= 2:
                if grams[-2:] in known:
                    found.append(grams[-2:])
                if len(grams) == 3 and grams in known:
                    found.append(grams)
        return found

    def _update_lang_prob(self, prob: list[float], word: str | None, alpha: float) -> bool:
        if word is None or word not in self.word_lang_prob_map:
            return False
        weight = alpha / self.BASE_FREQ
        prob[:] = [
            p * (weight + q) for p, q in zip(prob, self.word_lang_prob_map[word], strict=True)
        ]
        return True


def detect_langs(text: str) -> list[Language]:
    """`langdetect.detect_langs` through the detector above (its profiles, its seed)."""
    detector_factory.init_factory()
    detector = Detector(detector_factory._factory)
    detector.append(text)
    return detector.get_probabilities()
