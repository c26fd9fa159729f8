"""Drift statistics: pure functions over arrays, each a named, standard method.

- `mmd_test`: maximum mean discrepancy with an RBF kernel (bandwidth by the median heuristic) and a
  permutation-test p-value (Gretton et al., 2012), for embedding samples;
- `classifier_auc`: a domain classifier (logistic regression, cross-validated ROC AUC); Evidently
  calls embeddings drifted when the AUC exceeds 0.55;
- `ks_test`: the two-sample Kolmogorov-Smirnov test (answer lengths);
- `psi`: the population stability index over ten buckets cut at the reference's deciles;
- `p95_ratio`, `rate`: latency and error/violation figures;
- `slower_test`: the one-sided Wilcoxon signed-rank test that paired latencies of one side are
  longer than the other's (on log latencies, so a ratio counts the same at any speed);
- `centroid_cosine`: style similarity, the cosine between two embedding centroids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Evidently's default for its embedding / text domain classifier.
CLASSIFIER_AUC_DRIFT = 0.55
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class MMDResult:
    """Unbiased MMD² between two samples, its permutation p-value and the kernel bandwidth."""

    mmd2: float
    p_value: float
    bandwidth: float
    permutations: int


def _as_matrix(sample: Sequence | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(sample, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"{name} must hold at least two vectors, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _squared_distances(z: np.ndarray) -> np.ndarray:
    norms = np.einsum("ij,ij->i", z, z)
    d2 = norms[:, None] + norms[None, :] - 2.0 * z @ z.T
    np.maximum(d2, 0.0, out=d2)
    return d2


def _mmd2_unbiased(kernel: np.ndarray, n: int) -> float:
    kxx = kernel[:n, :n]
    kyy = kernel[n:, n:]
    kxy = kernel[:n, n:]
    m = kernel.shape[0] - n
    sum_xx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    sum_yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sum_xx + sum_yy - 2.0 * kxy.mean())


def mmd_test(
    reference: Sequence | np.ndarray,
    current: Sequence | np.ndarray,
    *,
    permutations: int = 500,
    seed: int = 0,
) -> MMDResult:
    """MMD² (RBF kernel, median heuristic bandwidth on the pooled sample) between `reference` and
    `current`, with the share of label permutations reaching it as p-value (add-one smoothed)."""
    x = _as_matrix(reference, "reference")
    y = _as_matrix(current, "current")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: reference {x.shape[1]} vs current {y.shape[1]}")
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    z = np.vstack([x, y])
    d2 = _squared_distances(z)
    off_diagonal = d2[np.triu_indices_from(d2, k=1)]
    positive = off_diagonal[off_diagonal > 0]
    median = float(np.median(positive)) if positive.size else 1.0
    # k(a, b) = exp(-|a - b|² / 2σ²) with σ² the median pairwise squared distance
    kernel = np.exp(-d2 / (2.0 * median))
    n = x.shape[0]
    observed = _mmd2_unbiased(kernel, n)
    rng = np.random.default_rng(seed)
    reached = 0
    for _ in range(permutations):
        order = rng.permutation(z.shape[0])
        if _mmd2_unbiased(kernel[np.ix_(order, order)], n) >= observed:
            reached += 1
    return MMDResult(
        mmd2=observed,
        p_value=(reached + 1) / (permutations + 1),
        bandwidth=float(np.sqrt(median)),
        permutations=permutations,
    )


def classifier_auc(
    reference: Sequence | np.ndarray,
    current: Sequence | np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """Out-of-fold ROC AUC of a logistic regression telling `current` rows from `reference` rows:
    about 0.5 when the samples are alike, towards 1.0 as they drift apart."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = _as_matrix(reference, "reference")
    y = _as_matrix(current, "current")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: reference {x.shape[1]} vs current {y.shape[1]}")
    folds = min(folds, x.shape[0], y.shape[0])
    if folds < 2:
        raise ValueError("classifier_auc needs at least two rows in each sample")
    features = np.vstack([x, y])
    labels = np.r_[np.zeros(x.shape[0]), np.ones(y.shape[0])]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(
        LogisticRegression(max_iter=1000), features, labels, cv=splitter, method="predict_proba"
    )[:, 1]
    return float(roc_auc_score(labels, scores))


@dataclass(frozen=True)
class KSResult:
    statistic: float
    p_value: float


def ks_test(reference: Sequence[float], current: Sequence[float]) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test (scipy), two-sided."""
    from scipy.stats import ks_2samp

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"ks_test needs two values per sample, got {a.size} and {b.size}")
    result = ks_2samp(a, b)
    return KSResult(float(result.statistic), float(result.pvalue))


def psi(reference: Sequence[float], current: Sequence[float], buckets: int = 10) -> float:
    """Population stability index of `current` against `reference`, over `buckets` bins cut at the
    reference's quantiles (equal-frequency; ties merge bins). Below 0.1: stable; 0.1-0.2: moderate
    shift; 0.2 and above: significant shift."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.size < buckets or cur.size == 0:
        raise ValueError(
            f"psi needs at least {buckets} reference values and one current value, "
            f"got {ref.size} and {cur.size}"
        )
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, buckets + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    actual = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=inner.size + 1)
    e = np.maximum(expected / ref.size, PSI_EPSILON)
    a = np.maximum(actual / cur.size, PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def p95(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("p95 of an empty sample")
    return float(np.percentile(array, 95))


def p95_ratio(baseline: Sequence[float], current: Sequence[float]) -> float:
    """p95 of `current` over p95 of `baseline` (2.0: twice as slow at the tail)."""
    base = p95(baseline)
    return p95(current) / base if base > 0 else float("inf")


def slower_test(baseline: Sequence[float], current: Sequence[float]) -> float:
    """p-value of the one-sided Wilcoxon signed-rank test that each `current` latency is longer
    than its paired `baseline` one (scipy; log ratios, equal pairs left out). 1.0 when no pair
    differs. Small: `current` is slower pair after pair, not in one or two outliers."""
    from scipy.stats import wilcoxon

    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"slower_test needs paired samples, got {a.size} and {b.size} values")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("slower_test needs positive latencies")
    differences = np.log(b) - np.log(a)
    if not np.any(differences):
        return 1.0
    return float(wilcoxon(differences, alternative="greater").pvalue)


def rate(flags: Sequence[bool]) -> float:
    """Share of true flags (0.0 for an empty sample)."""
    return float(np.mean(np.asarray(flags, dtype=bool))) if len(flags) else 0.0


def centroid(vectors: np.ndarray) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    if matrix.shape[0] == 0:
        raise ValueError("centroid of an empty sample")
    mean = matrix.mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 0 else mean


def centroid_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of the centroids of two embedding samples (1.0: same direction)."""
    return float(np.dot(centroid(a), centroid(b)))
