"""Challenger-versus-champion checks over shadow pairs, a first deployment's checks over its own
answers, and the promote / roll back verdict.

Each check yields its figures and a pass/fail against a threshold; every figure is kept, so the
decision row in `serving.deployments` shows why a version was promoted or rolled back. A check
that cannot be computed (no style anchor, no answers, an embedding failure) fails with that
reason: nothing passes by default.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from twin.deploy import drift
from twin.deploy.guardrails import violates, violations
from twin.settings import Settings

Embed = Callable[[Sequence[str]], np.ndarray]


def _deploy_setting(name: str) -> Any:
    """The field `Settings.deploy_<name>` (type, default and bounds), declared there once."""
    return copy.copy(Settings.model_fields[f"deploy_{name}"])


class Thresholds(BaseModel):
    """What a challenger must meet to be promoted (defaults from settings, overridable per run)."""

    min_samples: int = _deploy_setting("min_samples")
    drift_method: str = _deploy_setting("drift_method")
    mmd_alpha: float = _deploy_setting("mmd_alpha")
    max_classifier_auc: float = _deploy_setting("max_classifier_auc")
    ks_alpha: float = _deploy_setting("ks_alpha")
    max_style_drop: float = _deploy_setting("max_style_drop")
    max_latency_p95_ratio: float = _deploy_setting("max_latency_p95_ratio")
    latency_alpha: float = _deploy_setting("latency_alpha")
    max_error_rate: float = _deploy_setting("max_error_rate")
    max_guardrail_rate: float = _deploy_setting("max_guardrail_rate")
    max_empty_rate: float = _deploy_setting("max_empty_rate")
    max_wrong_source_rate: float = _deploy_setting("max_wrong_source_rate")
    first_questions: int = _deploy_setting("first_questions")
    permutations: int = Field(default=500, ge=1, le=10_000)
    # absolute: the challenger's mean repeated word 4-gram rate, whatever the champion's
    max_loop_rate: float = _deploy_setting("max_loop_rate")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Thresholds:
        """Thresholds from the `deploy_*` settings, with non-None `overrides` on top."""
        values = {
            name: getattr(settings, f"deploy_{name}")
            for name in cls.model_fields
            if hasattr(settings, f"deploy_{name}")
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)


@dataclass(frozen=True)
class ShadowPair:
    """One request answered by both versions (an error is the error's text, else None)."""

    query: str
    champion_answer: str
    challenger_answer: str
    champion_latency_ms: float | None
    challenger_latency_ms: float | None
    champion_error: str | None = None
    challenger_error: str | None = None


@dataclass(frozen=True)
class VersionAnswer:
    """A version's own answer to one of its author's evaluation questions (through twin_rag):
    the documents that should be among its sources, and the ones that were."""

    question: str
    answer: str
    expected_documents: tuple[str, ...]
    source_documents: tuple[str, ...]
    latency_ms: float | None
    error: str | None = None


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    figures: dict[str, float | int | None]
    detail: str


@dataclass
class CheckReport:
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def figures(self) -> dict[str, float | int | None]:
        merged: dict[str, float | int | None] = {}
        for check in self.checks:
            merged.update(check.figures)
        return merged

    @property
    def reason(self) -> str:
        failed = [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]
        return "; ".join(failed) if failed else "all checks passed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "figures": self.figures,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
        }


def _round(value: float) -> float:
    return round(float(value), 6)


def evaluate_shadow(
    pairs: Sequence[ShadowPair],
    thresholds: Thresholds,
    embed: Embed,
    author_vectors: np.ndarray | None = None,
    *,
    anchor_problem: str | None = None,
) -> CheckReport:
    """Every check over the shadow pairs; `embed` turns answers into unit vectors, and
    `author_vectors` (the author's own passages, embedded) anchor the style check. Without an
    anchor (`anchor_problem` says why) the style check fails; so do the embedding checks when
    the answers cannot be embedded."""
    t = thresholds
    report = CheckReport()
    n = len(pairs)
    report.checks.append(
        CheckResult(
            "samples",
            n >= t.min_samples,
            {"samples": n},
            f"{n} shadow pairs (minimum {t.min_samples})",
        )
    )
    errors = drift.rate([p.challenger_error is not None for p in pairs])
    champion_errors = drift.rate([p.champion_error is not None for p in pairs])
    report.checks.append(
        CheckResult(
            "error_rate",
            n > 0 and errors <= t.max_error_rate,
            {"error_rate": _round(errors), "champion_error_rate": _round(champion_errors)},
            f"challenger error rate {errors:.3f} (max {t.max_error_rate})",
        )
    )
    answered = [p for p in pairs if p.challenger_error is None and p.champion_error is None]
    if len(answered) < 2:
        report.checks.append(
            CheckResult("answers", False, {"answered_pairs": len(answered)}, "fewer than two pairs")
        )
        report.checks.append(_no_style("fewer than two answered pairs"))
        return report
    report.checks.append(_latency(answered, t))
    report.checks.append(_guardrails(answered, t))
    report.checks.append(_loops(answered, t))
    champion_text = [p.champion_answer for p in answered]
    challenger_text = [p.challenger_answer for p in answered]
    report.checks.append(_empty(challenger_text, t))
    report.checks.append(_lengths(champion_text, challenger_text, t))
    try:
        champion_vectors = _embedded(embed, champion_text)
        challenger_vectors = _embedded(embed, challenger_text)
    except Exception as err:  # a figure that cannot be computed fails its check, never passes
        problem = f"embedding the answers failed: {type(err).__name__}: {err}"[:300]
        report.checks.append(
            CheckResult(
                "embedding_drift",
                False,
                {"mmd2": None, "mmd_p_value": None, "classifier_auc": None},
                f"not computed: {problem}",
            )
        )
        report.checks.append(_no_style(problem))
        return report
    report.checks.append(_embedding_drift(champion_vectors, challenger_vectors, t))
    if author_vectors is None or not len(author_vectors):
        report.checks.append(_no_style(anchor_problem or "no style anchor was given"))
    else:
        report.checks.append(_style(champion_vectors, challenger_vectors, author_vectors, t))
    return report


def _embedded(embed: Embed, texts: Sequence[str]) -> np.ndarray:
    vectors = np.asarray(embed(texts), dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(texts) or not np.all(np.isfinite(vectors)):
        raise ValueError(f"expected {len(texts)} finite vectors, got shape {vectors.shape}")
    return vectors


def _no_style(problem: str) -> CheckResult:
    return CheckResult(
        "style",
        False,
        {"style_similarity": None, "champion_style": None},
        f"style not computed: {problem}",
    )


def rule_rate(answers: Sequence[str], rule: str) -> float:
    """Share of answers that break one guardrail rule (`twin.deploy.guardrails`)."""
    return drift.rate([rule in violations(a) for a in answers])


def _empty(answers: Sequence[str], t: Thresholds) -> CheckResult:
    """The share of empty answers, held to an absolute cap whatever any other version does."""
    empty = rule_rate(answers, "empty")
    return CheckResult(
        "empty_answers",
        empty <= t.max_empty_rate,
        {"empty_rate": _round(empty)},
        f"empty answers {empty:.3f} (max {t.max_empty_rate})",
    )


def _latency(pairs: Sequence[ShadowPair], t: Thresholds) -> CheckResult:
    """Fails when the challenger's p95 is over budget against the champion's and it is slower
    pair after pair (paired signed-rank test below `latency_alpha`; 1: the budget alone): one or
    two slow requests on a busy host lift a p95 of a few dozen samples without making a version
    slower."""
    timed = [
        (p.champion_latency_ms, p.challenger_latency_ms)
        for p in pairs
        if p.champion_latency_ms and p.challenger_latency_ms
    ]
    if not timed:
        return CheckResult("latency", False, {"latency_p95_ratio": None}, "no timed pairs")
    champion, challenger = zip(*timed, strict=True)
    ratio = drift.p95_ratio(champion, challenger)
    p_value = drift.slower_test(champion, challenger)
    slower = t.latency_alpha >= 1 or p_value < t.latency_alpha
    return CheckResult(
        "latency",
        ratio <= t.max_latency_p95_ratio or not slower,
        {
            "latency_p95_ratio": _round(ratio),
            "latency_p_value": _round(p_value),
            "champion_p95_ms": _round(drift.p95(champion)),
            "challenger_p95_ms": _round(drift.p95(challenger)),
        },
        f"p95 latency ratio {ratio:.2f} (max {t.max_latency_p95_ratio}), slower pair after pair "
        f"p {p_value:.4f} (fails below {t.latency_alpha})",
    )


def _guardrails(pairs: Sequence[ShadowPair], t: Thresholds) -> CheckResult:
    challenger = drift.rate([violates(p.challenger_answer) for p in pairs])
    champion = drift.rate([violates(p.champion_answer) for p in pairs])
    return CheckResult(
        "guardrails",
        challenger - champion <= t.max_guardrail_rate,
        {"guardrail_rate": _round(challenger), "champion_guardrail_rate": _round(champion)},
        f"guardrail violations {challenger:.3f} vs champion {champion:.3f} "
        f"(max +{t.max_guardrail_rate})",
    )


def _loops(pairs: Sequence[ShadowPair], t: Thresholds) -> CheckResult:
    return _loop_floor([p.challenger_answer for p in pairs], t, [p.champion_answer for p in pairs])


def _loop_floor(
    answers: Sequence[str], t: Thresholds, champion: Sequence[str] | None = None
) -> CheckResult:
    """A version's repeated 4-gram rate, held to an absolute cap: a champion that loops as well
    does not make a looping challenger acceptable (a first deployment has no champion)."""
    from twin.training.style import repeat_rate

    rate = float(np.mean([repeat_rate(a) for a in answers]))
    figures: dict[str, float | int | None] = {"repeat_rate": _round(rate)}
    detail = f"repeated 4-gram rate {rate:.3f} (max {t.max_loop_rate}"
    if champion is not None:
        theirs = float(np.mean([repeat_rate(a) for a in champion]))
        figures["champion_repeat_rate"] = _round(theirs)
        detail += f", whatever the champion's {theirs:.3f}"
    return CheckResult("loops", rate <= t.max_loop_rate, figures, detail + ")")


def _embedding_drift(champion: np.ndarray, challenger: np.ndarray, t: Thresholds) -> CheckResult:
    mmd = drift.mmd_test(champion, challenger, permutations=t.permutations)
    auc = drift.classifier_auc(champion, challenger) if len(champion) >= 4 else None
    figures = {
        "mmd2": _round(mmd.mmd2),
        "mmd_p_value": _round(mmd.p_value),
        "classifier_auc": None if auc is None else _round(auc),
    }
    if t.drift_method == "classifier" and auc is not None:
        return CheckResult(
            "embedding_drift",
            auc <= t.max_classifier_auc,
            figures,
            f"domain classifier ROC AUC {auc:.3f} (max {t.max_classifier_auc})",
        )
    return CheckResult(
        "embedding_drift",
        mmd.p_value >= t.mmd_alpha,
        figures,
        f"MMD² {mmd.mmd2:.4f}, permutation p {mmd.p_value:.4f} (min {t.mmd_alpha})",
    )


def answer_length(text: str) -> int:
    """Length of an answer in whitespace-separated words."""
    return len(text.split())


def _lengths(champion: Sequence[str], challenger: Sequence[str], t: Thresholds) -> CheckResult:
    a = [answer_length(x) for x in champion]
    b = [answer_length(x) for x in challenger]
    ks = drift.ks_test(a, b)
    return CheckResult(
        "answer_length",
        ks.p_value >= t.ks_alpha,
        {
            "length_ks": _round(ks.statistic),
            "length_ks_p_value": _round(ks.p_value),
            "champion_mean_words": _round(np.mean(a)),
            "challenger_mean_words": _round(np.mean(b)),
        },
        f"answer-length KS {ks.statistic:.3f}, p {ks.p_value:.4f} (min {t.ks_alpha})",
    )


def _style(
    champion: np.ndarray, challenger: np.ndarray, author: np.ndarray, t: Thresholds
) -> CheckResult:
    champion_style = drift.centroid_cosine(champion, author)
    challenger_style = drift.centroid_cosine(challenger, author)
    drop = champion_style - challenger_style
    return CheckResult(
        "style",
        drop <= t.max_style_drop,
        {"style_similarity": _round(challenger_style), "champion_style": _round(champion_style)},
        f"style similarity {challenger_style:.3f} vs champion {champion_style:.3f} "
        f"(max drop {t.max_style_drop})",
    )


def first_deployment_report(
    answers: Sequence[VersionAnswer], thresholds: Thresholds, problem: str | None = None
) -> CheckReport:
    """With no champion to compare against, the version's own answers to its author's
    evaluation questions (asked through twin_rag) are held to the absolute floors: enough
    answers, errors, empty answers, loops (the same caps a challenger is held to), answers
    whose sources miss the labelled document. Every figure is kept; no answers at all fails
    (`problem` says why there are none)."""
    t = thresholds
    report = CheckReport()
    n = len(answers)
    report.checks.append(
        CheckResult(
            "first_answers",
            n >= 2,
            {"first_deployment": 1, "questions_asked": n},
            f"{n} evaluation questions answered by the version through twin_rag (minimum 2)"
            + (f": {problem}" if problem else ""),
        )
    )
    errors = drift.rate([a.error is not None for a in answers])
    report.checks.append(
        CheckResult(
            "error_rate",
            n > 0 and errors <= t.max_error_rate,
            {"error_rate": _round(errors)},
            f"error rate {errors:.3f} (max {t.max_error_rate})",
        )
    )
    answered = [a for a in answers if a.error is None]
    if not answered:
        return report
    texts = [a.answer for a in answered]
    report.checks.append(_empty(texts, t))
    report.checks.append(_loop_floor(texts, t))
    wrong = drift.rate([not set(a.expected_documents) & set(a.source_documents) for a in answered])
    report.checks.append(
        CheckResult(
            "wrong_source",
            wrong <= t.max_wrong_source_rate,
            {"wrong_source_rate": _round(wrong)},
            f"answers whose sources miss the labelled document {wrong:.3f} "
            f"(max {t.max_wrong_source_rate})",
        )
    )
    latencies = [a.latency_ms for a in answered if a.latency_ms is not None]
    words = [answer_length(x) for x in texts]
    figures: dict[str, float | int | None] = {
        "guardrail_rate": _round(drift.rate([violates(x) for x in texts])),
        "mean_words": _round(np.mean(words)),
        "p50_ms": _round(np.percentile(latencies, 50)) if latencies else None,
        "p95_ms": _round(drift.p95(latencies)) if latencies else None,
    }
    report.checks.append(
        CheckResult("answer_figures", True, figures, "figures of the version's own answers")
    )
    return report
