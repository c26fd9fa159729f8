"""Near-duplicate assignment over a signature matrix gives what datasketch's MinHashLSH gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
from datasketch import MinHashLSH

from twin.domain.text import NUM_PERM, is_near_duplicate, minhash_of
from twin.warehouse.enrich import (
    CANDIDATE_THRESHOLD,
    CurrentDocument,
    assign_near_duplicates,
    band_candidates,
    canonical_order,
    lsh_bands,
)

WORDS = [f"w{i}" for i in range(400)]


def corpus(seed: int) -> list[str]:
    """Unrelated texts, exact and edited copies of them, copies of copies, short and empty ones."""
    rng = random.Random(seed)
    originals = [" ".join(rng.choices(WORDS, k=rng.randint(20, 200))) for _ in range(40)]
    texts = list(originals)
    for text in rng.sample(originals, 25):
        words = text.split()
        for _ in range(rng.randint(0, len(words) // 40)):
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        texts.append(" ".join(words))
        texts.append(" ".join(words[: len(words) * 2 // 3]))  # mostly contained
    texts += [texts[-1], "", "one two", "one two three four five"]
    return texts


def documents(texts: list[str], seed: int) -> list[CurrentDocument]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        CurrentDocument(
            f"doc-{i:03d}",
            f"hash-{i}",
            None if rng.random() < 0.1 else start + timedelta(days=rng.randint(0, 30)),
        )
        for i in range(len(texts))
    ]


def with_minhashlsh(docs, signatures, sizes):
    """The assignment as it was written on MinHashLSH (the oracle)."""
    ordered = canonical_order(docs)
    position = {d.document_id: i for i, d in enumerate(ordered)}
    lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=NUM_PERM)
    for d in ordered:
        if sizes[d.document_id]:
            lsh.insert(d.document_id, signatures[d.document_id])
    canonical: set[str] = set()
    result = {}
    for d in ordered:
        best = None
        if sizes[d.document_id]:
            for cand in sorted(lsh.query(signatures[d.document_id]), key=position.__getitem__):
                if cand not in canonical:
                    continue
                jac = float(signatures[d.document_id].jaccard(signatures[cand]))
                if is_near_duplicate(jac, sizes[d.document_id], sizes[cand]) and (
                    best is None or jac > best[1]
                ):
                    best = (cand, jac)
        if best is None:
            canonical.add(d.document_id)
            result[d.document_id] = (None, None)
        else:
            result[d.document_id] = (best[0], round(best[1], 4))
    return result


def test_band_candidates_are_minhashlsh_query_results():
    texts = corpus(1)
    signatures = [minhash_of(text)[0] for text in texts if text]
    matrix = np.stack([np.asarray(s.hashvalues, dtype=np.uint32) for s in signatures])
    found = band_candidates(matrix, *lsh_bands())
    lsh = MinHashLSH(threshold=CANDIDATE_THRESHOLD, num_perm=NUM_PERM)
    for i, sig in enumerate(signatures):
        lsh.insert(i, sig)
    assert any(len(partners) > 1 for partners in found.values())
    for i, sig in enumerate(signatures):
        assert found.get(i, {i}) == set(lsh.query(sig)), i


def test_assignment_is_the_minhashlsh_one():
    for seed in range(3):
        texts = corpus(seed)
        docs = documents(texts, seed)
        analysed = {d.document_id: minhash_of(t) for d, t in zip(docs, texts, strict=True)}
        sizes = {doc_id: size for doc_id, (_, size) in analysed.items()}
        minhashes = {doc_id: sig for doc_id, (sig, _) in analysed.items()}
        values = {
            doc_id: np.asarray(sig.hashvalues, dtype=np.uint32) for doc_id, sig in minhashes.items()
        }
        expected = with_minhashlsh(docs, minhashes, sizes)
        assert sum(1 for of, _ in expected.values() if of) >= 10
        assert assign_near_duplicates(docs, values, sizes) == expected


def test_no_document_with_text():
    docs = documents(["", ""], 0)
    empty = {d.document_id: np.zeros(NUM_PERM, dtype=np.uint32) for d in docs}
    assert assign_near_duplicates(docs, empty, dict.fromkeys(empty, 0)) == {
        d.document_id: (None, None) for d in docs
    }
