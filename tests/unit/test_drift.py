"""Drift statistics on samples with known answers: alike samples pass, shifted ones are caught."""

import numpy as np
import pytest

from twin.deploy import drift


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_mmd_same_distribution_high_p_shifted_low_p(rng) -> None:
    a = rng.normal(size=(60, 8))
    b = rng.normal(size=(60, 8))
    shifted = rng.normal(loc=0.8, size=(60, 8))

    same = drift.mmd_test(a, b, permutations=200)
    moved = drift.mmd_test(a, shifted, permutations=200)

    assert same.p_value > 0.05
    assert moved.p_value < 0.01
    assert moved.mmd2 > same.mmd2
    assert moved.bandwidth > 0


def test_mmd_catches_a_change_of_spread_not_only_of_mean(rng) -> None:
    a = rng.normal(size=(80, 4))
    wide = rng.normal(scale=2.5, size=(80, 4))

    assert drift.mmd_test(a, wide, permutations=200).p_value < 0.01


def test_mmd_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="dimension mismatch"):
        drift.mmd_test(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least two"):
        drift.mmd_test(np.zeros((1, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        drift.mmd_test(np.full((3, 2), np.nan), np.zeros((3, 2)))


def test_classifier_auc_near_half_when_alike_high_when_shifted(rng) -> None:
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(400, 16))
    shifted = rng.normal(size=(400, 16))
    shifted[:, 0] += 2.0

    alike = drift.classifier_auc(a, b)
    moved = drift.classifier_auc(a, shifted)

    assert abs(alike - 0.5) < 0.1
    assert alike <= drift.CLASSIFIER_AUC_DRIFT
    assert moved > 0.85


def test_ks_lengths(rng) -> None:
    a = rng.poisson(40, size=200)
    b = rng.poisson(40, size=200)
    short = rng.poisson(12, size=200)

    assert drift.ks_test(a, b).p_value > 0.05
    result = drift.ks_test(a, short)
    assert result.p_value < 1e-6 and result.statistic > 0.8


def test_psi_stable_vs_shifted(rng) -> None:
    ref = rng.normal(size=2000)
    same = rng.normal(size=2000)
    moved = rng.normal(loc=1.0, size=2000)

    assert drift.psi(ref, same) < 0.05
    assert drift.psi(ref, moved) > 0.5
    assert drift.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)


def test_psi_known_value_on_two_buckets() -> None:
    # reference split 50/50 at 0.5; current 80/20: PSI = 0.3*ln(1.6) + 0.3*ln(2.5)
    ref = [0.0] * 5 + [1.0] * 5
    cur = [0.0] * 8 + [1.0] * 2

    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert drift.psi(ref, cur) == pytest.approx(expected)


def test_psi_needs_enough_reference_values() -> None:
    with pytest.raises(ValueError, match="at least 10 reference"):
        drift.psi([1.0, 2.0], [1.0])


def test_latency_ratio_and_rates() -> None:
    base = list(range(1, 101))
    assert drift.p95_ratio(base, [x * 10 for x in base]) == pytest.approx(10.0)
    assert drift.p95_ratio(base, base) == pytest.approx(1.0)
    assert drift.rate([True, False, False, False]) == 0.25
    assert drift.rate([]) == 0.0


def test_slower_test_needs_pair_after_pair_not_one_outlier(rng) -> None:
    base = rng.gamma(4.0, 50.0, size=12)
    noise = rng.lognormal(0.0, 0.3, size=12)
    assert drift.slower_test(base, base * 1.5 * noise) < 0.01  # slower in nearly every pair
    alike = base * noise
    outliers = alike.copy()
    outliers[:2] *= 20  # two requests stuck behind other work
    assert drift.p95_ratio(base, outliers) > 2.0
    assert drift.slower_test(base, outliers) > 0.05
    assert drift.slower_test(base, base) == 1.0  # no pair differs
    assert drift.slower_test(base * 2, base) > 0.99  # faster every time


def test_slower_test_rejects_unpaired_or_empty_samples() -> None:
    with pytest.raises(ValueError, match="paired"):
        drift.slower_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="paired"):
        drift.slower_test([], [])
    with pytest.raises(ValueError, match="positive"):
        drift.slower_test([0.0, 2.0], [1.0, 2.0])


def test_centroid_cosine() -> None:
    a = np.array([[1.0, 0.0], [0.9, 0.1]])
    b = np.array([[0.0, 1.0], [0.1, 0.9]])

    assert drift.centroid_cosine(a, a) == pytest.approx(1.0)
    assert drift.centroid_cosine(a, b) < 0.3
