"""Pure text analysis shared by the stages: word shingles, MinHash signatures, near-duplicate
rules and language detection (the warehouse's enrichment and the training datasets use the same)."""

from __future__ import annotations

import re
from itertools import islice

import numpy as np
from datasketch import MinHash

# langdetect (seeded) over py3langid or lingua: on tests/unit/test_language_detection.py it
# labels every text right; py3langid 0.2.2 (the last for numpy<2) calls Danish Norwegian, and
# lingua 2.1 is a 96 MB wheel that takes ~20 s to load all its models.
from langdetect import DetectorFactory, LangDetectException

from twin.domain.language import detect_langs  # langdetect's, without its per-character loops

NUM_PERM = 128
SHINGLE_WORDS = 5
MINHASH_SCHEME = "affine32"  # uint32 hash values: 4 bytes per permutation
MINHASH_SEED = 1
# A pair is a near-duplicate at this estimated Jaccard similarity of word 5-shingles ...
JACCARD_THRESHOLD = 0.8
# ... or when one text is almost wholly contained in the other and they are of similar length:
# a lightly edited short post (a cross-post with a changed sentence and sign-off) loses many
# shingles per edit, so its Jaccard similarity falls well below what a reader would call a copy.
CONTAINMENT_THRESHOLD = 0.8
LENGTH_RATIO_THRESHOLD = 0.7
UNDETERMINED = "und"
MIN_LANGUAGE_LETTERS = 40  # below this langdetect guesses; report 'und' instead
LANGUAGE_SAMPLE_CHARS = 5000

WORD_RE = re.compile(r"\w+", re.UNICODE)
CODE_BLOCK_RE = re.compile(r"```.*?```|~~~.*?~~~", re.DOTALL)
INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
URL_RE = re.compile(r"https?://\S+|www\.\S+")
PLACEHOLDER_RE = re.compile(r"\[(?:EMAIL|PHONE|ADDRESS|SECRET)\]")
HASHTAG_RE = re.compile(r"(?<!\w)#\w+")
LETTER_RE = re.compile(r"[^\W\d_]", re.UNICODE)


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """Distinct word `size`-shingles of the lower-cased text (the whole text if shorter)."""
    words = WORD_RE.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


_TEMPLATE: dict[int, MinHash] = {}


def empty_minhash(num_perm: int = NUM_PERM) -> MinHash:
    """A fresh MinHash sharing the (costly to generate) permutations of one template."""
    template = _TEMPLATE.get(num_perm)
    if template is None:
        template = _TEMPLATE[num_perm] = MinHash(
            num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME
        )
    return MinHash(
        seed=MINHASH_SEED,
        hashvalues=template.hashvalues,
        permutations=template.permutations,
        scheme=MINHASH_SCHEME,
    )


def minhash_of(text: str, num_perm: int = NUM_PERM) -> tuple[MinHash, int]:
    """The MinHash signature of the text's word shingles, and how many shingles there were."""
    grams = shingles(text)
    sig = empty_minhash(num_perm)
    if grams:
        sig.update_batch([g.encode("utf-8") for g in sorted(grams)])
    return sig, len(grams)


def hashvalues_bytes(values: np.ndarray) -> bytes:
    """A signature's hash values as stored: little-endian uint32 per permutation."""
    return np.asarray(values, dtype="<u4").tobytes()


def hashvalues_from_bytes(blob: bytes, num_perm: int = NUM_PERM) -> np.ndarray | None:
    """A stored signature's hash values (None if it was made with another num_perm)."""
    if len(blob) != num_perm * 4:
        return None
    return np.frombuffer(blob, dtype="<u4").astype(np.uint32)


def signature_bytes(sig: MinHash) -> bytes:
    """The signature as stored (`hashvalues_bytes` of its hash values)."""
    return hashvalues_bytes(sig.hashvalues)


def language_text(body: str) -> str:
    """The prose of a markdown body: code, URLs, hashtags and placeholders removed."""
    text = CODE_BLOCK_RE.sub(" ", body)
    text = INLINE_CODE_RE.sub(" ", text)
    text = URL_RE.sub(" ", text)
    text = PLACEHOLDER_RE.sub(" ", text)
    text = HASHTAG_RE.sub(" ", text)
    return text[:LANGUAGE_SAMPLE_CHARS]


def detect_language(body: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability); ('und', 0.0) for text too short or unrecognisable."""
    text = language_text(body)
    if next(islice(LETTER_RE.finditer(text), MIN_LANGUAGE_LETTERS - 1, None), None) is None:
        return UNDETERMINED, 0.0
    DetectorFactory.seed = 0  # langdetect samples at random: a fixed seed keeps runs identical
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return UNDETERMINED, 0.0
    return best.lang, round(float(best.prob), 4)


def is_near_duplicate(jaccard: float, size_a: int, size_b: int) -> bool:
    """Whether two shingle sets of these sizes and estimated Jaccard similarity are copies."""
    if jaccard >= JACCARD_THRESHOLD:
        return True
    small, large = sorted((size_a, size_b))
    if small == 0 or small / large < LENGTH_RATIO_THRESHOLD:
        return False
    shared = jaccard / (1.0 + jaccard) * (size_a + size_b)  # |A ∩ B| from J and the set sizes
    return shared / small >= CONTAINMENT_THRESHOLD
