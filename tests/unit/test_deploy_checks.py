"""Challenger checks over recorded shadow pairs, with the packaged MiniLM embedding the answers:
a challenger drawn from the champion's distribution passes; garbage, slow, erroring or terse
challengers fail on the check that names their fault."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from twin.deploy.checks import (
    ShadowPair,
    Thresholds,
    VersionAnswer,
    evaluate_shadow,
    first_deployment_report,
)
from twin.deploy.guardrails import violations

SENTENCES = [
    "Ship the boring version first and measure what users actually do.",
    "A warehouse is only as good as the tests that guard its marts.",
    "I prefer small batches of incremental loads over nightly full refreshes.",
    "Idempotent tasks make retries safe, which makes on-call nights quiet.",
    "Hybrid retrieval beats pure vector search on names and rare terms.",
    "Every pipeline should say what it changed, not only that it ran.",
    "Data contracts belong in code review, not in a wiki page nobody reads.",
    "When a dashboard disagrees with the warehouse, trust neither until you trace it.",
    "Airflow assets let the pipeline run when the data changes, not when the clock ticks.",
    "Evaluation sets rot: refresh them with the questions people really ask.",
    "Latency budgets are product decisions wearing an engineering costume.",
    "A feature store without lineage is a cache with a marketing budget.",
    "Chunk by the document's own structure before you reach for token windows.",
    "Most model regressions I have seen were data regressions in disguise.",
    "Write the rollback before you write the deploy script.",
    "Monitoring that never pages is either perfect or not connected.",
]
QUESTIONS = [f"What do you think about topic {i}?" for i in range(60)]


def answers(seed: int, n: int, lo: int = 2, hi: int = 4) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(SENTENCES, rng.randint(lo, hi))) for _ in range(n)]


def latencies(seed: int, n: int, scale: float = 1.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(rng.gamma(4.0, 50.0, size=n) * scale)


def pairs(challenger: list[str], slow: float = 1.0, errors: int = 0) -> list[ShadowPair]:
    champion = answers(1, len(challenger))
    fast, slower = latencies(2, len(challenger)), latencies(3, len(challenger), slow)
    return [
        ShadowPair(q, a, b, la, lb, None, "Triton: model version failed" if i < errors else None)
        for i, (q, a, b, la, lb) in enumerate(
            zip(QUESTIONS, champion, challenger, fast, slower, strict=False)
        )
    ]


@pytest.fixture(scope="module")
def embed():
    from twin.features.embed import Embedder

    embedder = Embedder.get()
    return lambda texts: embedder.encode(list(texts))


@pytest.fixture(scope="module")
def author(embed) -> np.ndarray:
    return embed(SENTENCES)


def gibberish(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "xq#z@k%v&j$w!0193"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(40, 200))) for _ in range(n)]


def test_same_distribution_challenger_passes(embed, author) -> None:
    report = evaluate_shadow(pairs(answers(9, 50)), Thresholds(min_samples=40), embed, author)

    print("same-distribution figures", report.figures)
    assert report.passed, report.reason
    assert report.figures["mmd_p_value"] > 0.05
    assert report.figures["classifier_auc"] < 0.75
    assert report.figures["latency_p95_ratio"] < 1.5


def test_garbage_challenger_fails_drift_guardrails_and_style(embed, author) -> None:
    report = evaluate_shadow(pairs(gibberish(4, 50)), Thresholds(min_samples=40), embed, author)
    failed = {c.name for c in report.checks if not c.passed}

    print("garbage figures", report.figures)
    assert {"embedding_drift", "guardrails", "style"} <= failed
    assert report.figures["mmd_p_value"] < 0.01
    assert report.figures["guardrail_rate"] == 1.0


def test_ten_times_slower_challenger_fails_latency_only(embed, author) -> None:
    report = evaluate_shadow(
        pairs(answers(9, 50), slow=10.0), Thresholds(min_samples=40), embed, author
    )
    failed = {c.name for c in report.checks if not c.passed}

    print("slow figures", report.figures)
    assert failed == {"latency"}
    assert report.figures["latency_p95_ratio"] > 5 and report.figures["latency_p_value"] < 0.01


def test_a_few_stuck_requests_do_not_fail_latency_unless_the_budget_alone_decides(
    embed, author
) -> None:
    """Two challenger requests queued behind other work lift a p95 over 50 pairs past the 2.0
    budget; the challenger is not slower pair after pair, so latency passes; with alpha 1 the
    budget alone decides and it fails."""
    stuck = [
        replace(p, challenger_latency_ms=p.challenger_latency_ms * 20) if i < 3 else p
        for i, p in enumerate(pairs(answers(9, 50)))
    ]
    judged = evaluate_shadow(stuck, Thresholds(min_samples=40), embed, author)
    strict = evaluate_shadow(stuck, Thresholds(min_samples=40, latency_alpha=1.0), embed, author)

    print("stuck figures", judged.figures)
    assert judged.figures["latency_p95_ratio"] > 2.0
    assert judged.figures["latency_p_value"] > 0.05
    assert judged.passed, judged.reason
    assert {c.name for c in strict.checks if not c.passed} == {"latency"}


def test_terse_challenger_fails_the_length_test(embed, author) -> None:
    terse = [s.split(".")[0].split(",")[0][:40] + "." for s in answers(9, 50, 1, 1)]
    report = evaluate_shadow(pairs(terse), Thresholds(min_samples=40), embed, author)

    print("terse figures", report.figures)
    assert not next(c for c in report.checks if c.name == "answer_length").passed
    assert report.figures["length_ks_p_value"] < 0.01


def test_erroring_challenger_and_too_few_samples(embed) -> None:
    report = evaluate_shadow(pairs(answers(9, 30), errors=5), Thresholds(min_samples=40), embed)
    failed = {c.name for c in report.checks if not c.passed}

    assert failed >= {"samples", "error_rate"}
    assert report.figures["error_rate"] == pytest.approx(5 / 30, abs=1e-5)
    assert "30 shadow pairs (minimum 40)" in report.reason


def test_classifier_method_is_selectable(embed) -> None:
    t = Thresholds(min_samples=10, drift_method="classifier")
    good = evaluate_shadow(pairs(answers(9, 50)), t, embed)
    bad = evaluate_shadow(pairs(gibberish(5, 50)), t, embed)

    drift_good = next(c for c in good.checks if c.name == "embedding_drift")
    drift_bad = next(c for c in bad.checks if c.name == "embedding_drift")
    assert drift_good.passed and "ROC AUC" in drift_good.detail
    assert not drift_bad.passed and bad.figures["classifier_auc"] > 0.9


def test_without_a_style_anchor_the_style_check_fails_with_the_reason(embed) -> None:
    report = evaluate_shadow(
        pairs(answers(9, 50)),
        Thresholds(min_samples=40),
        embed,
        None,
        anchor_problem="vectors.chunks holds no passage of author 'Nobody'",
    )
    style = next(c for c in report.checks if c.name == "style")

    assert not report.passed
    assert not style.passed and style.figures["style_similarity"] is None
    assert "style not computed: vectors.chunks holds no passage" in report.reason
    empty = evaluate_shadow(pairs(answers(9, 50)), Thresholds(min_samples=40), embed, embed([])[:0])
    assert not empty.passed and "style not computed" in empty.reason


def test_an_embedding_failure_fails_drift_and_style_instead_of_passing(author) -> None:
    def broken(texts):
        raise RuntimeError("embedding model missing")

    report = evaluate_shadow(pairs(answers(9, 50)), Thresholds(min_samples=40), broken, author)
    failed = {c.name for c in report.checks if not c.passed}

    assert failed == {"embedding_drift", "style"}
    assert "embedding the answers failed: RuntimeError: embedding model missing" in report.reason


def version_answers(n: int, wrong: int = 0, empty: int = 0) -> list[VersionAnswer]:
    texts = answers(7, n)
    return [
        VersionAnswer(
            question=QUESTIONS[i],
            answer="" if i < empty else texts[i],
            expected_documents=(f"doc-{i}",),
            source_documents=("other",) if i < wrong else (f"doc-{i}", "other"),
            latency_ms=100.0 + i,
        )
        for i in range(n)
    ]


def test_first_deployment_is_judged_on_its_own_answers() -> None:
    t = Thresholds(max_wrong_source_rate=0.5, max_empty_rate=0.1)
    good = first_deployment_report(version_answers(12), t)
    wrong = first_deployment_report(version_answers(12, wrong=8), t)
    empty = first_deployment_report(version_answers(12, empty=4), t)
    loop = "The scheduler is a test of the scheduler. " * 6
    looping = first_deployment_report([replace(a, answer=loop) for a in version_answers(12)], t)
    none = first_deployment_report([], t, "author 'Nobody' has no evaluation question set")

    assert good.passed, good.reason
    assert good.figures["questions_asked"] == 12 and good.figures["wrong_source_rate"] == 0.0
    assert good.figures["p95_ms"] > 100 and good.figures["mean_words"] > 5
    assert not wrong.passed and "wrong_source" in wrong.reason
    assert wrong.figures["wrong_source_rate"] == pytest.approx(8 / 12, abs=1e-5)
    assert not empty.passed and empty.figures["empty_rate"] == pytest.approx(4 / 12, abs=1e-5)
    assert not looping.passed and "loops" in looping.reason and looping.figures["repeat_rate"] > 0.5
    assert not none.passed and "has no evaluation question set" in none.reason


def test_thresholds_from_settings_and_overrides() -> None:
    from twin.settings import Settings

    settings = Settings(deploy_min_samples=12, deploy_max_latency_p95_ratio=3.0)
    t = Thresholds.from_settings(settings, max_latency_p95_ratio=None, ks_alpha=0.05)

    assert (t.min_samples, t.max_latency_p95_ratio, t.ks_alpha) == (12, 3.0, 0.05)
    with pytest.raises(ValueError):
        Thresholds.from_settings(settings, drift_method="vibes")


@pytest.mark.parametrize(
    ("answer", "rule"),
    [
        ("", "empty"),
        ("Sure! <|im_start|>assistant hello", "leaked_template"),
        ("#$%^&*()!@#$%^&*()_+ 12 34", "not_language"),
        ("data " * 30, "repetition"),
        ("Write to me at ada@example.com for details.", "personal_data"),
        # shadow pairs are stored redacted: the placeholder stands for what the model wrote
        ("Write to me at [EMAIL] or call [PHONE] for details.", "personal_data"),
    ],
)
def test_guardrail_rules(answer: str, rule: str) -> None:
    assert rule in violations(answer)


def test_a_plain_answer_breaks_no_guardrail() -> None:
    assert violations(SENTENCES[0] + " " + SENTENCES[1]) == []
