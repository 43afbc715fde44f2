"""The paper's linear probe on frozen image features: L2-regularised multinomial logistic regression (scikit-learn,
L-BFGS) with C swept on a validation split, its few-shot variant, and the accuracy helpers both share with zero-shot.

Features are used as given, neither L2-normalised nor standardised, as in the paper (Radford et al. 2021, A.3): the
probe measures the frozen representation itself. Multiplying every feature by s is the same model as multiplying C
by s**2, so the sweep over twelve decades of C absorbs any global scale; per-dimension standardisation would change
the geometry the probe measures. Callers who want CLIP_benchmark's convention normalise the features first.
Features are fitted in float64: on float32 input scikit-learn's objective mixes precisions depending on whether C is
a Python or a NumPy float, and near-ties in validation accuracy then flip with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression

from wit_builder.errors import WitError

# --------------------------------------------------------------------------------------------------------- metrics


def accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Top-k accuracy of per-class scores [n, K] (logits, probabilities or similarities) against int labels [n].
    A class ranks above the true one when it scores higher, or equal with a lower index (np.argmax's rule), so
    k=1 agrees exactly with argmax predictions."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0] or scores.shape[0] == 0:
        raise ValueError("need scores [n, K] and labels [n] with the same, non-zero n")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of classes ({scores.shape[1]})")
    true = scores[np.arange(len(labels)), labels][:, None]
    lower_index = np.arange(scores.shape[1])[None, :] < labels[:, None]
    rank = (scores > true).sum(axis=1) + ((scores == true) & lower_index).sum(axis=1)
    return float((rank < k).mean())


def mean_per_class_recall(preds: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in `labels` of the fraction of their examples predicted right (the paper's
    metric for unbalanced sets); classes absent from `labels` have no recall and are left out of the mean."""
    preds = np.asarray(preds, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if preds.shape != labels.shape or labels.size == 0:
        raise ValueError("need predictions and labels of the same, non-zero length")
    total = np.bincount(labels, minlength=n_classes)
    right = np.bincount(labels[preds == labels], minlength=n_classes)
    present = total > 0
    return float((right[present] / total[present]).mean())


# ----------------------------------------------------------------------------------------------------- the C sweep


def coarse_grid(c_range: tuple[float, float] = (1e-6, 1e6), steps: int = 13) -> np.ndarray:
    """`steps` values of C evenly spaced in log10 from c_range[0] to c_range[1], both ends included."""
    lo, hi = math.log10(c_range[0]), math.log10(c_range[1])
    return 10.0 ** np.linspace(lo, hi, steps)


def fine_grid(coarse: np.ndarray, best: int, steps: int = 8) -> np.ndarray:
    """`steps` values evenly spaced in log10 strictly between the neighbours of coarse[best] (the best itself at
    an end of the grid), leaving out values already in the coarse grid."""
    lo = coarse[max(best - 1, 0)]
    hi = coarse[min(best + 1, len(coarse) - 1)]
    fine = 10.0 ** np.linspace(math.log10(lo), math.log10(hi), steps + 2)[1:-1]
    return np.array([c for c in fine if not np.isclose(coarse, c, rtol=1e-9, atol=0).any()])


def sweep_c(
    evaluate: Callable[[float], float],
    c_range: tuple[float, float] = (1e-6, 1e6),
    coarse_steps: int = 13,
    fine_steps: int = 8,
) -> tuple[float, float, list[tuple[float, float]]]:
    """Coarse log grid of C, then a fine one around the best coarse C; returns (best C, its score, [(C, score)] in
    the order tried). Ties go to the smallest C (the strongest regularisation)."""
    coarse = coarse_grid(c_range, coarse_steps)
    sweep = [(float(c), float(evaluate(float(c)))) for c in coarse]
    best = _best(sweep)
    if fine_steps > 0 and len(coarse) > 1:
        sweep += [(float(c), float(evaluate(float(c)))) for c in fine_grid(coarse, _index(coarse, best[0]), fine_steps)]
        best = _best(sweep)
    return best[0], best[1], sweep


def _best(sweep: list[tuple[float, float]]) -> tuple[float, float]:
    """The highest score; among equal scores the smallest C."""
    return min(sweep, key=lambda cs: (-cs[1], cs[0]))


def _index(grid: np.ndarray, c: float) -> int:
    return int(np.flatnonzero(grid == c)[0])


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int = 1000) -> LogisticRegression:
    """One L2-regularised multinomial logistic regression by L-BFGS, as the paper's probe fits it."""
    # One BLAS/OpenMP thread: these small products run ~5x faster than with the threads of torch's and scipy's
    # runtimes competing for the same cores.
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # expected at the sweep's extreme C; max_iter bounds it
        return LogisticRegression(C=c, l1_ratio=0.0, solver="lbfgs", max_iter=max_iter).fit(x, y)


def class_scores(clf: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Decision values [n, n_classes]; classes the probe never saw score -inf so top-k never picks them."""
    raw = clf.decision_function(x)
    if raw.ndim == 1:  # a two-class problem: one margin for classes_[1]
        raw = np.stack([-raw, raw], axis=1)
    scores = np.full((x.shape[0], n_classes), -np.inf)
    scores[:, clf.classes_] = raw
    return scores


def standardize(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Every array shifted and scaled by the training features' per-dimension mean and std (float64). CLIP's
    features are L2-normalised, so their coordinates are small and L-BFGS needs hundreds of iterations at the large
    C such features want; standardised, it needs about a hundred at every C (the probe's function class is the same:
    an affine map of the inputs is absorbed by the weights and bias; only what the L2 penalty measures changes)."""
    train_x = np.asarray(train_x, dtype=np.float64)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [(np.asarray(x, dtype=np.float64) - mean) / std for x in (train_x, *others)]


# ------------------------------------------------------------------------------------------------------ validation


def _check(x: np.ndarray, y: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise WitError(
            f"{what}: need features [n, d] and labels [n] with the same, non-zero n; got {x.shape}, {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise WitError(f"{what}: labels must be non-negative integers (classes 0..K-1)")
    return x, y.astype(np.int64)


def stratified_split(labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), both sorted. Each class with n >= 2 examples sends round(val_fraction * n) of
    them, at least 1 and at most n - 1, drawn with `seed`, to val; a class with one example stays in train."""
    labels = np.asarray(labels, dtype=np.int64)
    if not 0 < val_fraction < 1:
        raise WitError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n = len(members)
        take = min(max(int(math.floor(val_fraction * n + 0.5)), 1), n - 1)
        val.extend(members[:take].tolist())
    val_idx = np.sort(np.array(val, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    if len(val_idx) == 0:
        raise WitError("no class has two training examples to hold one out for validation: give val_x and val_y")
    return train_idx, val_idx


# ------------------------------------------------------------------------------------------------- the full probe


@dataclass
class ProbeResult:
    """One linear probe: the chosen C, its validation accuracy, and the test metrics of the refit on train + val."""

    C: float
    val_accuracy: float
    top1: float
    top5: float | None  # None when there are fewer than 5 classes
    mean_per_class_recall: float
    predictions: np.ndarray  # int64 [n_test]
    sweep: list[tuple[float, float]] = field(default_factory=list)  # (C, val accuracy) in the order tried
    n_train: int = 0  # examples the sweep fitted on (the refit uses n_train + n_val)
    n_val: int = 0
    n_test: int = 0


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, **fit
) -> ProbeResult:
    """The paper's probe: C swept on the validation split (val_x/val_y, or `stratified_split` of train with
    `seed`, where one-example classes stay in train), then refit on train + val with that C and scored on test.
    `fit` are `fit_probe`'s keywords (val_x, val_y, val_fraction, seed, c_range, coarse_steps, fine_steps, max_iter)."""
    clf, c, val_acc, sweep, n_train, n_val, n_classes = fit_probe(train_x, train_y, **fit)
    test_x, test_y = _check(test_x, test_y, "test")
    n_classes = max(n_classes, int(test_y.max()) + 1)
    scores = class_scores(clf, test_x, n_classes)
    preds = clf.predict(test_x).astype(np.int64)
    return ProbeResult(
        C=c,
        val_accuracy=val_acc,
        top1=float((preds == test_y).mean()),
        top5=accuracy(scores, test_y, 5) if n_classes >= 5 else None,
        mean_per_class_recall=mean_per_class_recall(preds, test_y, n_classes),
        predictions=preds,
        sweep=sweep,
        n_train=n_train,
        n_val=n_val,
        n_test=len(test_y),
    )


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    *,
    val_x: np.ndarray | None = None,
    val_y: np.ndarray | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    c_range: tuple[float, float] = (1e-6, 1e6),
    coarse_steps: int = 13,
    fine_steps: int = 8,
    max_iter: int = 1000,
) -> tuple[LogisticRegression, float, float, list[tuple[float, float]], int, int, int]:
    """The sweep and refit of `linear_probe` without a test set (to score one probe on several test sets); returns
    (classifier, C, val accuracy, sweep, n_train, n_val, number of classes seen)."""
    train_x, train_y = _check(train_x, train_y, "train")
    if (val_x is None) != (val_y is None):
        raise WitError("give both val_x and val_y, or neither to hold out a stratified part of train")
    if val_x is None:
        tr, va = stratified_split(train_y, val_fraction, seed)
        fit_x, fit_y, val_x, val_y = train_x[tr], train_y[tr], train_x[va], train_y[va]
    else:
        val_x, val_y = _check(val_x, val_y, "val")
        fit_x, fit_y = train_x, train_y
    if len(np.unique(fit_y)) < 2:
        raise WitError("a linear probe needs training examples of at least two classes")
    n_classes = int(max(fit_y.max(), val_y.max())) + 1

    def val_accuracy(c: float) -> float:
        return float((fit_logistic(fit_x, fit_y, c, max_iter).predict(val_x) == val_y).mean())

    c, val_acc, sweep = sweep_c(val_accuracy, c_range, coarse_steps, fine_steps)
    clf = fit_logistic(np.concatenate([fit_x, val_x]), np.concatenate([fit_y, val_y]), c, max_iter)
    return clf, c, val_acc, sweep, len(fit_y), len(val_y), n_classes


# ----------------------------------------------------------------------------------------------------- few-shot


@dataclass
class FewShotResult:
    """k-shot probes, one per seed: test top-1 of each, their mean and standard deviation (ddof=1; 0 for one seed)."""

    k: int
    seeds: list[int]
    top1: list[float]  # per seed
    mean_top1: float
    std_top1: float
    C: list[float]  # the C each seed's probe used
    n_train: list[int]  # training examples per seed (k per class, or all of a smaller class)
    short_classes: int  # classes with fewer than k training examples, all of which were used


def shot_indices(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of k examples per class (all of a class with fewer), drawn with `seed`. The draw is one
    permutation per class and seed, so the k-shot set holds every smaller-k set of the same seed."""
    labels = np.asarray(labels, dtype=np.int64)
    largest = int(np.bincount(labels).max())
    if k < 1 or k > largest:
        raise WitError(f"{k}-shot needs at least {k} images per class; the largest class has {largest}")
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def fit_few_shot(
    x: np.ndarray,
    y: np.ndarray,
    *,
    c_range: tuple[float, float] = (1e-6, 1e6),
    coarse_steps: int = 13,
    fine_steps: int = 8,
    max_iter: int = 1000,
    max_folds: int = 4,
    one_shot_c: float = 1.0,
) -> tuple[LogisticRegression, float]:
    """A probe on a k-shot set using no other labels: C from a sweep scored by cross-validation over the set (fold
    j holds out the examples at positions j, j + folds, ... of each class; folds = min(k, max_folds)). At k = 1
    nothing can be held out, so C = one_shot_c / mean ||x||^2: one_shot_c on features scaled to unit mean norm."""
    x, y = _check(x, y, "few-shot train")
    k = int(np.bincount(y).max())
    folds = min(k, max_folds)
    if folds < 2:
        c = one_shot_c / float(np.mean(np.sum(np.square(x, dtype=np.float64), axis=1)))
        return fit_logistic(x, y, c, max_iter), c
    position = np.zeros(len(y), dtype=np.int64)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        position[members] = np.arange(len(members))
    splits = [(position % folds != j, position % folds == j) for j in range(folds)]
    splits = [(tr, va) for tr, va in splits if len(np.unique(y[tr])) >= 2]

    def cv_accuracy(c: float) -> float:
        right = sum(int((fit_logistic(x[tr], y[tr], c, max_iter).predict(x[va]) == y[va]).sum()) for tr, va in splits)
        return right / sum(int(va.sum()) for _, va in splits)

    c, _, _ = sweep_c(cv_accuracy, c_range, coarse_steps, fine_steps)
    return fit_logistic(x, y, c, max_iter), c


def few_shot(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    seeds: Sequence[int] = (0, 1, 2),
    **fit,
) -> list[FewShotResult]:
    """For each k in `shots` and each seed: a probe on k examples per class (`shot_indices`), C chosen from those
    examples alone (`fit_few_shot`, whose keywords `fit` are: c_range, coarse_steps, fine_steps, max_iter,
    max_folds, one_shot_c), scored top-1 on the whole test set."""
    train_x, train_y = _check(train_x, train_y, "train")
    test_x, test_y = _check(test_x, test_y, "test")
    counts = np.bincount(train_y)
    counts = counts[counts > 0]
    results = []
    for k in shots:
        top1, cs, sizes = [], [], []
        for seed in seeds:
            idx = shot_indices(train_y, k, seed)
            clf, c = fit_few_shot(train_x[idx], train_y[idx], **fit)
            top1.append(float((clf.predict(test_x) == test_y).mean()))
            cs.append(c)
            sizes.append(len(idx))
        results.append(
            FewShotResult(
                k=k,
                seeds=list(seeds),
                top1=top1,
                mean_top1=float(np.mean(top1)),
                std_top1=float(np.std(top1, ddof=1)) if len(top1) > 1 else 0.0,
                C=cs,
                n_train=sizes,
                short_classes=int((counts < k).sum()),
            )
        )
    return results
