"""Does overlap inflate accuracy? Per dataset, the paper's section 5 numbers: accuracy on All, Clean and Overlap, a
one-sided binomial test of Overlap against Clean, a 99.5% Clopper-Pearson interval and the estimated effect on All."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from wit_builder.errors import WitError

CONFIDENCE = 0.995  # the paper's Figure 17 error bars
NAN = float("nan")


@dataclass(frozen=True)
class OverlapStats:
    """One dataset's overlap statistics; accuracies are fractions in [0, 1]. A field that its counts leave undefined
    (no Overlap or no Clean examples) is NaN."""

    dataset: str
    n: int
    n_clean: int
    n_overlap: int
    correct: int
    correct_clean: int
    correct_overlap: int
    overlap_fraction: float
    acc_all: float
    acc_clean: float
    acc_overlap: float
    difference: float  # Overlap - Clean
    p_value: float  # one-sided binomial test: Overlap successes vs Clean accuracy, alternative "greater"
    ci_low: float  # 99.5% Clopper-Pearson interval of the Overlap accuracy
    ci_high: float
    effect_all: float  # overlap fraction x (Overlap - Clean): All accuracy minus what it would be without overlap
    effect_low: float  # the same with the Clopper-Pearson bounds in place of the Overlap accuracy
    effect_high: float


def overlap_stats(correct, is_overlap, dataset: str = "", confidence: float = CONFIDENCE) -> OverlapStats:
    """Statistics of one dataset from per-example `correct` and `is_overlap` flags (equal-length boolean arrays)."""
    c, o = np.asarray(correct, dtype=bool).ravel(), np.asarray(is_overlap, dtype=bool).ravel()
    if c.size == 0:
        raise WitError(f"no evaluation examples for the overlap statistics of {dataset or 'this dataset'}")
    if c.shape != o.shape:
        raise WitError(f"correct ({c.size}) and is_overlap ({o.size}) must have one flag per example each")
    return stats_from_counts(dataset, int(c.size), int(o.sum()), int(c.sum()), int(c[o].sum()), confidence)


def stats_from_counts(
    dataset: str, n: int, n_overlap: int, correct: int, correct_overlap: int, confidence: float = CONFIDENCE
) -> OverlapStats:
    """The same statistics from counts: n examples, n_overlap of them overlapping; correct in all, in Overlap."""
    if n <= 0:
        raise WitError(f"no evaluation examples for the overlap statistics of {dataset or 'this dataset'}")
    if not (
        0 <= n_overlap <= n
        and 0 <= correct_overlap <= min(correct, n_overlap)
        and correct - correct_overlap <= n - n_overlap
    ):
        raise WitError(f"inconsistent overlap counts for {dataset or 'this dataset'}")
    n_clean, correct_clean = n - n_overlap, correct - correct_overlap
    acc_clean = correct_clean / n_clean if n_clean else NAN
    acc_overlap = correct_overlap / n_overlap if n_overlap else NAN
    fraction = n_overlap / n
    p_value = ci_low = ci_high = NAN
    if n_overlap:
        # the interval comes from a two-sided test: scipy's interval follows the test's alternative, and a
        # "greater" test would give [low, 1]
        ci = binomtest(correct_overlap, n_overlap).proportion_ci(confidence_level=confidence, method="exact")
        ci_low, ci_high = float(ci.low), float(ci.high)
        if n_clean:
            p_value = float(binomtest(correct_overlap, n_overlap, acc_clean, alternative="greater").pvalue)
    return OverlapStats(
        dataset=dataset,
        n=n,
        n_clean=n_clean,
        n_overlap=n_overlap,
        correct=correct,
        correct_clean=correct_clean,
        correct_overlap=correct_overlap,
        overlap_fraction=fraction,
        acc_all=correct / n,
        acc_clean=acc_clean,
        acc_overlap=acc_overlap,
        difference=acc_overlap - acc_clean,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        effect_all=fraction * (acc_overlap - acc_clean),
        effect_low=fraction * (ci_low - acc_clean),
        effect_high=fraction * (ci_high - acc_clean),
    )


def is_defined(x: float) -> bool:
    """False for NaN: the statistic's counts leave it undefined."""
    return not math.isnan(x)
