"""Challenger-versus-champion checks over shadow pairs, and the promote / roll back verdict.

Each check yields its figures and a pass/fail against a threshold; every figure is kept, so the
decision row in `serving.deployments` shows why a version was promoted or rolled back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from twin.deploy import drift
from twin.deploy.guardrails import violates
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
    max_error_rate: float = _deploy_setting("max_error_rate")
    max_guardrail_rate: float = _deploy_setting("max_guardrail_rate")
    permutations: int = Field(default=500, ge=1, le=10_000)
    # absolute: the challenger's mean repeated word 4-gram rate, whatever the champion's
    max_loop_rate: float = Field(default=0.1, ge=0, le=1)

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
) -> CheckReport:
    """Every check over the shadow pairs; `embed` turns answers into unit vectors, and
    `author_vectors` (the author's own passages, embedded) anchor the style check."""
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
        return report
    report.checks.append(_latency(answered, t))
    report.checks.append(_guardrails(answered, t))
    report.checks.append(_loops(answered, t))
    champion_text = [p.champion_answer for p in answered]
    challenger_text = [p.challenger_answer for p in answered]
    champion_vectors = np.asarray(embed(champion_text), dtype=np.float64)
    challenger_vectors = np.asarray(embed(challenger_text), dtype=np.float64)
    report.checks.append(_embedding_drift(champion_vectors, challenger_vectors, t))
    report.checks.append(_lengths(champion_text, challenger_text, t))
    if author_vectors is not None and len(author_vectors):
        report.checks.append(_style(champion_vectors, challenger_vectors, author_vectors, t))
    return report


def _latency(pairs: Sequence[ShadowPair], t: Thresholds) -> CheckResult:
    timed = [
        (p.champion_latency_ms, p.challenger_latency_ms)
        for p in pairs
        if p.champion_latency_ms is not None and p.challenger_latency_ms is not None
    ]
    if not timed:
        return CheckResult("latency", False, {"latency_p95_ratio": None}, "no timed pairs")
    champion, challenger = zip(*timed, strict=True)
    ratio = drift.p95_ratio(champion, challenger)
    return CheckResult(
        "latency",
        ratio <= t.max_latency_p95_ratio,
        {
            "latency_p95_ratio": _round(ratio),
            "champion_p95_ms": _round(drift.p95(champion)),
            "challenger_p95_ms": _round(drift.p95(challenger)),
        },
        f"p95 latency ratio {ratio:.2f} (max {t.max_latency_p95_ratio})",
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
    """The challenger's repeated 4-gram rate, held to an absolute cap: a champion that loops
    as well does not make a looping challenger acceptable."""
    from twin.training.style import repeat_rate

    challenger = float(np.mean([repeat_rate(p.challenger_answer) for p in pairs]))
    champion = float(np.mean([repeat_rate(p.champion_answer) for p in pairs]))
    return CheckResult(
        "loops",
        challenger <= t.max_loop_rate,
        {"repeat_rate": _round(challenger), "champion_repeat_rate": _round(champion)},
        f"repeated 4-gram rate {challenger:.3f} (max {t.max_loop_rate}, whatever the "
        f"champion's {champion:.3f})",
    )


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


def first_deployment_report(evaluation_passed: bool) -> CheckReport:
    """With no champion to compare against, the evaluation gate is the only check."""
    return CheckReport(
        [
            CheckResult(
                "evaluation_gate",
                evaluation_passed,
                {"first_deployment": 1},
                "no champion: promoted on its evaluation thresholds"
                if evaluation_passed
                else "evaluation thresholds not passed",
            )
        ]
    )
