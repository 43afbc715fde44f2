"""The linear probe is the paper's sweep run by scikit-learn: its chosen C, validation accuracies and test predictions
equal a sweep written out here with plain LogisticRegression calls; the metrics equal hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from eval.linear_probe import (
    accuracy,
    few_shot,
    fit_few_shot,
    linear_probe,
    mean_per_class_recall,
    shot_indices,
    stratified_split,
    sweep_c,
)
from wit_builder.errors import WitError


def _features(n: int, d: int = 16, k: int = 6, noise: float = 2.5, seed: int = 0):
    """Gaussian classes around random means, overlapping enough that C matters."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).normal(size=(k, d))
    y = np.arange(n) % k
    x = means[y] + noise * rng.normal(size=(n, d))
    return x, y.astype(np.int64)


def _plain_sweep(fit_x, fit_y, val_x, val_y):
    """The paper's sweep written out independently: 13 decades, then 8 steps between the best one's neighbours."""

    def val_acc(c):
        clf = LogisticRegression(C=c, l1_ratio=0.0, solver="lbfgs", max_iter=1000).fit(fit_x, fit_y)
        return float(np.mean(clf.predict(val_x) == val_y))

    coarse = np.logspace(-6, 6, 13)
    tried = [(c, val_acc(c)) for c in coarse]
    i = int(np.argmax([a for _, a in tried]))  # first maximum = smallest C among ties
    lo, hi = coarse[max(i - 1, 0)], coarse[min(i + 1, 12)]
    tried += [(c, val_acc(c)) for c in np.logspace(np.log10(lo), np.log10(hi), 10)[1:-1]]
    top = max(a for _, a in tried)
    return min(c for c, a in tried if a == top), tried


def test_probe_equals_plain_scikit_learn_sweep():
    train_x, train_y = _features(240, seed=1)
    val_x, val_y = _features(120, seed=2)
    test_x, test_y = _features(300, seed=3)
    result = linear_probe(train_x, train_y, test_x, test_y, val_x=val_x, val_y=val_y)

    best_c, tried = _plain_sweep(train_x, train_y, val_x, val_y)
    assert [c for c, _ in result.sweep] == [float(c) for c, _ in tried]
    assert [a for _, a in result.sweep] == [a for _, a in tried]
    assert result.C == best_c
    assert 1e-6 < result.C < 1e6  # an interior optimum, so the fine grid was used
    assert result.val_accuracy == max(a for _, a in tried)
    final = LogisticRegression(C=best_c, l1_ratio=0.0, solver="lbfgs", max_iter=1000).fit(
        np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    )
    expected = final.predict(test_x)
    assert result.predictions.dtype == np.int64
    np.testing.assert_array_equal(result.predictions, expected)
    assert result.top1 == np.mean(expected == test_y)
    top5 = np.argsort(-final.decision_function(test_x), axis=1)[:, :5]
    assert result.top5 == np.mean((top5 == test_y[:, None]).any(axis=1))
    recalls = [np.mean(expected[test_y == c] == c) for c in range(6)]
    assert result.mean_per_class_recall == pytest.approx(np.mean(recalls), abs=1e-12)
    assert (result.n_train, result.n_val, result.n_test) == (240, 120, 300)
    x32 = train_x.astype(np.float32)
    as_float32 = linear_probe(x32, train_y, test_x, test_y, val_x=val_x, val_y=val_y, coarse_steps=7, fine_steps=3)
    widened = linear_probe(
        x32.astype(np.float64), train_y, test_x, test_y, val_x=val_x, val_y=val_y, coarse_steps=7, fine_steps=3
    )
    assert as_float32.sweep == widened.sweep  # fitted in float64 whatever the input


def test_drawn_split_is_stratified_and_equals_giving_it():
    x, y = _features(200, k=4, seed=4)
    x, y = np.concatenate([x, x[:1] + 1]), np.concatenate([y, [4]])  # class 4 has a single example
    test_x, test_y = _features(100, k=4, seed=5)
    tr, va = stratified_split(y, 0.2, seed=7)
    assert np.bincount(y[va], minlength=5).tolist() == [10, 10, 10, 10, 0]  # one-example class stays in train
    assert 200 in tr and len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 201
    np.testing.assert_array_equal(stratified_split(y, 0.2, seed=7)[1], va)
    assert not np.array_equal(stratified_split(y, 0.2, seed=8)[1], va)

    kw = {"coarse_steps": 7, "fine_steps": 3}
    drawn = linear_probe(x, y, test_x, test_y, seed=7, **kw)
    given = linear_probe(x[tr], y[tr], test_x, test_y, val_x=x[va], val_y=y[va], **kw)
    assert drawn.C == given.C and drawn.sweep == given.sweep
    np.testing.assert_array_equal(drawn.predictions, given.predictions)
    assert (drawn.n_train, drawn.n_val) == (161, 40)
    assert drawn.top5 == 1.0  # K = 5 (class 4 is in train): top-5 of five classes is always right
    assert linear_probe(x, y, test_x, test_y, seed=7, **kw).sweep == drawn.sweep  # deterministic


def test_ties_go_to_the_smallest_c():
    c, acc, tried = sweep_c(lambda c: 0.5)
    assert (c, acc) == (1e-6, 0.5) and len(tried) == 13 + 8
    plateau = sweep_c(lambda c: 1.0 if 1e-2 <= c <= 1e2 else 0.5)
    assert plateau[0] == pytest.approx(1e-2, rel=1e-12) and plateau[1] == 1.0
    # separable data: every C above some point scores 1.0; the smallest of them is chosen
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = (np.eye(3)[y] * 10 + 0.1 * rng.normal(size=(90, 3))).astype(np.float32)
    result = linear_probe(x[:60], y[:60], x[60:], y[60:], val_x=x[30:60], val_y=y[30:60])
    assert result.val_accuracy == 1.0
    assert result.C == min(c for c, a in result.sweep if a == 1.0)


def test_accuracy_and_recall_on_a_hand_made_example():
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0: rank 0
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 5: rank 5
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # label 3: ties, lower indices first -> rank 3
            [0.0, 0.2, 0.9, 0.8, 0.7, 0.6],  # label 1: rank 4
        ]
    )
    labels = np.array([0, 5, 3, 1])
    assert accuracy(scores, labels, 1) == 0.25
    assert accuracy(scores, labels, 4) == 0.5
    assert accuracy(scores, labels, 5) == 0.75
    assert accuracy(scores, labels, 6) == 1.0
    assert accuracy(scores, labels, 1) == np.mean(np.argmax(scores, axis=1) == labels)
    rng = np.random.default_rng(0)
    s, lab = rng.normal(size=(50, 10)), rng.integers(0, 10, 50)
    top5 = np.argsort(-s, axis=1)[:, :5]
    assert accuracy(s, lab, 5) == np.mean((top5 == lab[:, None]).any(axis=1))
    with pytest.raises(ValueError):
        accuracy(scores, labels, 7)

    preds, truth = np.array([0, 1, 1, 1, 0, 0]), np.array([0, 0, 1, 1, 1, 2])
    assert mean_per_class_recall(preds, truth, 4) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_few_shot_sizes_determinism_and_short_classes():
    x, y = _features(120, k=4, seed=6)
    keep = (y != 3) | (np.cumsum(y == 3) <= 3)  # class 3 keeps 3 examples
    x, y = x[keep], y[keep]
    test_x, test_y = _features(80, k=4, seed=7)
    kw = {"shots": (1, 2, 4), "seeds": (0, 1), "coarse_steps": 5, "fine_steps": 2}
    first = few_shot(x, y, test_x, test_y, **kw)
    assert [r.k for r in first] == [1, 2, 4]
    assert [r.n_train for r in first] == [[4, 4], [8, 8], [15, 15]]
    assert [r.short_classes for r in first] == [0, 0, 1]
    again = few_shot(x, y, test_x, test_y, **kw)
    assert [(r.top1, r.C) for r in first] == [(r.top1, r.C) for r in again]
    for r in first:
        assert r.mean_top1 == pytest.approx(np.mean(r.top1)) and r.std_top1 == pytest.approx(np.std(r.top1, ddof=1))
    for k in (1, 2, 4):
        idx = shot_indices(y, k, 0)
        assert np.bincount(y[idx]).tolist() == [k, k, k, min(k, 3)]
    assert set(shot_indices(y, 2, 0)) <= set(shot_indices(y, 4, 0))  # one draw per seed: nested sets
    assert not np.array_equal(shot_indices(y, 2, 0), shot_indices(y, 2, 1))
    one = shot_indices(y, 1, 0)
    _, c = fit_few_shot(x[one], y[one], one_shot_c=2.0)
    assert c == pytest.approx(2.0 / np.mean(np.sum(x[one].astype(np.float64) ** 2, axis=1)))
    with pytest.raises(WitError, match="40-shot needs at least 40 images per class; the largest class has 30"):
        few_shot(x, y, test_x, test_y, shots=(40,), seeds=(0,))


def test_bad_inputs_are_one_line_errors():
    x, y = _features(40, k=4)
    with pytest.raises(WitError, match="same, non-zero n"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(WitError, match="both val_x and val_y"):
        linear_probe(x, y, x, y, val_x=x)
