"""twin_monitor's checks over one window of `serving.inference_log` against a reference window,
plus Triton's own counters.

- query drift: each live question's embedding is projected onto the reference questions' centroid
  (cosine) and the two distributions compared by PSI over ten buckets; an MMD permutation test on
  the embeddings is reported beside it; the top-1 retrieval similarity gets its own PSI;
- latency: p95 of the whole request (inference log) against a ceiling and against the reference
  window's p95; mean request latency from Triton's counters;
- errors: the share of failed requests in the log, and Triton's failure counter;
- no context: the share of questions answered with nothing above the similarity floor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from twin.deploy import drift
from twin.store.deployments import Alert

MONITOR = "twin_monitor"
FAILED_STATUSES = ("error", "unavailable")
MAX_MMD_ROWS = 200


@dataclass(frozen=True)
class LoggedRequest:
    """What the monitor reads from one inference-log row."""

    query: str
    status: str
    grounded: bool | None
    top1_similarity: float | None
    latency_ms: float | None


@dataclass(frozen=True)
class MonitorThresholds:
    min_queries: int = 20
    max_psi: float = 0.2
    max_latency_p95_ms: float = 5000.0
    max_latency_ratio: float = 2.0
    max_error_rate: float = 0.02
    max_no_context_share: float = 0.3

    @classmethod
    def from_settings(cls, settings: Any) -> MonitorThresholds:
        return cls(
            min_queries=settings.monitor_min_queries,
            max_psi=settings.monitor_max_psi,
            max_latency_p95_ms=settings.monitor_max_latency_p95_ms,
            max_latency_ratio=settings.monitor_max_latency_ratio,
            max_error_rate=settings.monitor_max_error_rate,
            max_no_context_share=settings.monitor_max_no_context_share,
        )


@dataclass
class MonitorReport:
    window_start: datetime
    window_end: datetime
    figures: dict[str, Any] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)

    def alert(self, check: str, severity: str, message: str, **figures: Any) -> None:
        self.alerts.append(
            Alert(MONITOR, check, severity, message, figures, self.window_start, self.window_end)
        )


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def query_drift(
    reference: np.ndarray, current: np.ndarray, permutations: int = 200
) -> dict[str, float]:
    """PSI (ten buckets) of each question's cosine to the reference centroid, and MMD."""
    center = drift.centroid(reference)
    figures = {
        "query_psi": drift.psi(reference @ center, current @ center),
        "query_centroid_cosine": drift.centroid_cosine(reference, current),
    }
    rng = np.random.default_rng(0)
    ref = reference[rng.permutation(len(reference))[:MAX_MMD_ROWS]]
    cur = current[rng.permutation(len(current))[:MAX_MMD_ROWS]]
    mmd = drift.mmd_test(ref, cur, permutations=permutations)
    figures.update(query_mmd2=mmd.mmd2, query_mmd_p_value=mmd.p_value)
    return {k: _r(v) for k, v in figures.items()}


def evaluate_window(
    current: Sequence[LoggedRequest],
    reference: Sequence[LoggedRequest],
    embed: Callable[[Sequence[str]], np.ndarray],
    thresholds: MonitorThresholds,
    window: tuple[datetime, datetime],
    triton: dict[str, float] | None = None,
) -> MonitorReport:
    """Every monitor check over a window; an alert for each threshold crossed."""
    t = thresholds
    report = MonitorReport(*window)
    f = report.figures
    f["queries"] = len(current)
    f["reference_queries"] = len(reference)
    if triton:
        f.update({f"triton_{k}": _r(v) for k, v in triton.items()})
        if triton.get("error_rate", 0.0) > t.max_error_rate:
            report.alert(
                "triton_errors",
                "critical",
                f"Triton failure rate {triton['error_rate']:.3f} above {t.max_error_rate}",
                error_rate=_r(triton["error_rate"]),
            )
        if triton.get("mean_latency_ms", 0.0) > t.max_latency_p95_ms:
            report.alert(
                "triton_latency",
                "warning",
                f"Triton mean request latency {triton['mean_latency_ms']:.0f} ms above "
                f"{t.max_latency_p95_ms:.0f} ms",
                mean_latency_ms=_r(triton["mean_latency_ms"]),
            )
    if len(current) < t.min_queries:
        f["note"] = f"{len(current)} queries in the window (minimum {t.min_queries}): no verdict"
        return report

    errors = drift.rate([r.status in FAILED_STATUSES for r in current])
    f["error_rate"] = _r(errors)
    if errors > t.max_error_rate:
        report.alert(
            "error_rate",
            "critical",
            f"error rate {errors:.3f} above {t.max_error_rate}",
            error_rate=_r(errors),
        )
    answered = [r for r in current if r.status == "ok"]
    no_context = drift.rate([r.grounded is False for r in answered])
    f["no_context_share"] = _r(no_context)
    if answered and no_context > t.max_no_context_share:
        report.alert(
            "no_context",
            "warning",
            f"{no_context:.0%} of questions had nothing above the similarity floor "
            f"(max {t.max_no_context_share:.0%})",
            no_context_share=_r(no_context),
        )
    _latency(report, current, reference, t)
    if len(reference) >= max(t.min_queries, 10):
        _drift(report, current, reference, embed, t)
    else:
        f["drift_note"] = f"reference window holds {len(reference)} queries: no drift verdict"
    return report


def _latency(report, current, reference, t: MonitorThresholds) -> None:
    f = report.figures
    now = [r.latency_ms for r in current if r.latency_ms is not None]
    if not now:
        return
    p95 = drift.p95(now)
    f["latency_p95_ms"] = _r(p95)
    before = [r.latency_ms for r in reference if r.latency_ms is not None]
    ratio = drift.p95_ratio(before, now) if len(before) >= t.min_queries else None
    f["latency_p95_ratio"] = _r(ratio)
    if p95 > t.max_latency_p95_ms or (ratio is not None and ratio > t.max_latency_ratio):
        report.alert(
            "latency",
            "critical",
            f"p95 latency {p95:.0f} ms (max {t.max_latency_p95_ms:.0f} ms); "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} the reference p95 "
            f"(max {t.max_latency_ratio}x)",
            latency_p95_ms=_r(p95),
            latency_p95_ratio=_r(ratio),
        )


def _drift(report, current, reference, embed, t: MonitorThresholds) -> None:
    f = report.figures
    figures = query_drift(
        np.asarray(embed([r.query for r in reference]), dtype=np.float64),
        np.asarray(embed([r.query for r in current]), dtype=np.float64),
    )
    f.update(figures)
    ref_top = [r.top1_similarity for r in reference if r.top1_similarity is not None]
    cur_top = [r.top1_similarity for r in current if r.top1_similarity is not None]
    if len(ref_top) >= 10 and cur_top:
        f["top1_psi"] = _r(drift.psi(ref_top, cur_top))
    if figures["query_psi"] > t.max_psi:
        report.alert(
            "query_drift",
            "warning",
            f"query embedding PSI {figures['query_psi']:.3f} above {t.max_psi} "
            f"(MMD p {figures['query_mmd_p_value']:.4f})",
            **figures,
        )
    if f.get("top1_psi") is not None and f["top1_psi"] > t.max_psi:
        report.alert(
            "top1_similarity_drift",
            "warning",
            f"top-1 similarity PSI {f['top1_psi']:.3f} above {t.max_psi}",
            top1_psi=f["top1_psi"],
        )


# Triton's Prometheus endpoint ---------------------------------------------------------------


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """Samples of a Prometheus text exposition: (metric, labels) → value."""
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.rpartition("}") if "}" in line else ("", "", line)
        if head:
            name, _, label_text = head.partition("{")
            value_text = rest.split()[0]
            labels = frozenset(
                (k.strip(), v.strip().strip('"'))
                for k, _, v in (pair.partition("=") for pair in _split_labels(label_text))
                if k.strip()
            )
        else:
            name, value_text = rest.split()[:2]
            labels = frozenset()
        try:
            samples[(name.strip(), labels)] = float(value_text)
        except ValueError:
            continue
    return samples


def _split_labels(text: str) -> list[str]:
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


def triton_counters(text: str, model: str = "twin_rag") -> dict[str, float]:
    """Cumulative success / failure / duration counters of one model, all versions summed."""
    totals = {"success": 0.0, "failure": 0.0, "duration_us": 0.0}
    names = {
        "nv_inference_request_success": "success",
        "nv_inference_request_failure": "failure",
        "nv_inference_request_duration_us": "duration_us",
    }
    for (name, labels), value in parse_prometheus(text).items():
        if name in names and dict(labels).get("model") == model:
            totals[names[name]] += value
    return totals


def counter_rates(before: dict[str, float] | None, after: dict[str, float]) -> dict[str, float]:
    """Requests, error rate and mean latency between two scrapes (a restart resets counters)."""
    if not before or any(after[k] < before.get(k, 0.0) for k in after):
        before = {k: 0.0 for k in after}
    ok = after["success"] - before["success"]
    failed = after["failure"] - before["failure"]
    total = ok + failed
    return {
        "requests": total,
        "error_rate": failed / total if total else 0.0,
        # Triton's duration counter covers successful requests only
        "mean_latency_ms": (after["duration_us"] - before["duration_us"]) / 1000 / ok
        if ok
        else 0.0,
    }
