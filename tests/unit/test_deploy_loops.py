"""The deployment's loop check holds absolutely: a challenger that repeats itself is refused even
when the champion loops just as much (every relative check would let it through)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from twin.deploy.checks import ShadowPair, Thresholds, evaluate_shadow

SENTENCES = [
    "Our nightly scheduler finished every job early because someone finally cleaned up old tasks.",
    "Good data quality comes from small checks written next to each model in review.",
    "Yesterday the pipeline failed once, retried twice, and then quietly loaded all rows.",
    "Hybrid retrieval found both passages that plain vector search missed on product codes.",
    "Our warehouse keeps raw tables for ninety days so backfills stay cheap and boring.",
    "That sales dashboard shows weekly revenue per region, refreshed each Monday before nine.",
]


def looping_answers(seed: int, n: int) -> list[str]:
    """Answers that say one sentence, then say it again (as a looping small model does)."""
    rng = random.Random(seed)
    return [" ".join([rng.choice(SENTENCES)] * 3) for _ in range(n)]


@pytest.fixture(scope="module")
def embed():
    from twin.features.embed import Embedder

    embedder = Embedder.get()
    return lambda texts: embedder.encode(list(texts))


def test_a_looping_challenger_is_refused_beside_a_looping_champion(embed) -> None:
    n = 48
    rng = np.random.default_rng(0)
    champion, challenger = looping_answers(1, n), looping_answers(2, n)
    pairs = [
        ShadowPair(f"question {i}?", a, b, float(la), float(lb))
        for i, (a, b, la, lb) in enumerate(
            zip(champion, challenger, rng.gamma(4, 50, n), rng.gamma(4, 50, n), strict=True)
        )
    ]
    author = np.asarray(embed(SENTENCES))
    report = evaluate_shadow(pairs, Thresholds(min_samples=40), embed, author)
    failed = {c.name for c in report.checks if not c.passed}

    print("looping figures", report.figures)
    assert "loops" in failed
    # relative to a champion that loops as well, nothing else objects
    assert {"guardrails", "embedding_drift", "answer_length", "style"}.isdisjoint(failed)
    assert report.figures["repeat_rate"] > 0.5 and report.figures["champion_repeat_rate"] > 0.5
    assert not report.passed
