"""Overlap statistics: equal to scipy called directly on the same counts, the effect on All by hand, degenerate
splits as NaN, and bad input."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from eval.overlap.stats import overlap_stats, stats_from_counts
from wit_builder.errors import WitError


def _flags(n_clean, correct_clean, n_overlap, correct_overlap):
    correct = [True] * correct_clean + [False] * (n_clean - correct_clean)
    correct += [True] * correct_overlap + [False] * (n_overlap - correct_overlap)
    return np.array(correct), np.array([False] * n_clean + [True] * n_overlap)


def test_statistics_equal_scipy_on_the_same_counts():
    correct, overlap = _flags(n_clean=900, correct_clean=540, n_overlap=100, correct_overlap=75)
    s = overlap_stats(correct, overlap, dataset="pets")
    assert (s.n, s.n_clean, s.n_overlap, s.correct, s.correct_clean, s.correct_overlap) == (
        1000,
        900,
        100,
        615,
        540,
        75,
    )
    assert (s.acc_all, s.acc_clean, s.acc_overlap) == (0.615, 0.6, 0.75)
    assert s.difference == pytest.approx(0.15) and s.overlap_fraction == 0.1
    direct = binomtest(75, 100, 0.6, alternative="greater")
    ci = binomtest(75, 100).proportion_ci(confidence_level=0.995, method="exact")  # two-sided Clopper-Pearson
    assert s.p_value == direct.pvalue and (s.ci_low, s.ci_high) == (ci.low, ci.high)
    assert s.p_value < 0.002 and s.ci_low < 0.75 < s.ci_high


def test_effect_on_all_by_hand():
    s = stats_from_counts("cars", n=200, n_overlap=20, correct=110, correct_overlap=8)
    # clean 102/180 = 0.5667, overlap 8/20 = 0.4; effect = 0.1 x (0.4 - 0.5667) = -0.016667 = All - Clean
    assert s.effect_all == pytest.approx(0.1 * (0.4 - 102 / 180))
    assert s.effect_all == pytest.approx(s.acc_all - s.acc_clean)
    assert s.effect_low == pytest.approx(0.1 * (s.ci_low - 102 / 180))
    assert s.effect_high == pytest.approx(0.1 * (s.ci_high - 102 / 180))
    assert s.effect_low < s.effect_all < s.effect_high and s.p_value > 0.9  # overlap did worse: nothing inflated


def test_degenerate_splits_are_nan_not_a_crash():
    none = overlap_stats([True, False, True], [False, False, False])
    assert none.acc_clean == pytest.approx(2 / 3) and none.overlap_fraction == 0.0
    for field in ("acc_overlap", "difference", "p_value", "ci_low", "ci_high", "effect_all", "effect_low"):
        assert math.isnan(getattr(none, field))
    every = overlap_stats([True, False], [True, True])
    assert every.acc_overlap == 0.5 and math.isnan(every.acc_clean) and math.isnan(every.p_value)
    assert 0 < every.ci_low < 0.5 < every.ci_high < 1 and math.isnan(every.effect_all)


def test_empty_and_mismatched_input_is_a_wit_error():
    with pytest.raises(WitError, match="no evaluation examples"):
        overlap_stats([], [], dataset="empty")
    with pytest.raises(WitError, match="one flag per example"):
        overlap_stats([True, False], [True])
    with pytest.raises(WitError, match="inconsistent"):
        stats_from_counts("x", n=10, n_overlap=2, correct=5, correct_overlap=3)
