"""The linear probe's C sweep against scikit-learn's LogisticRegressionCV on the same features and grid size.

    .venv/bin/python benchmarks/bench_probe.py                          # 5000 x 512 (20 classes) and 1000 x 128 (10)
    .venv/bin/python benchmarks/bench_probe.py --sizes 2000x256x20 --noise 8 --folds 3   # harder classes (minutes)

Features are synthetic but shaped like CLIP image embeddings: class means plus a few strong shared directions
("style") plus anisotropic noise, L2-normalised. Both arms get the same float64 train and test features and a grid
of the same size over 1e-6..1e6, L-BFGS, max_iter 1000:
- probe: `eval.linear_probe.linear_probe`, 13 coarse + 8 fine C on a stratified 20 % validation split, then a refit;
- LogisticRegressionCV: 21 log-spaced C, k-fold stratified cross-validation (warm-started along the C path), refit.
fits counts logistic regressions fitted; ratio = seconds / the probe's seconds on the same size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np


def synthetic_features(
    n: int, dim: int, classes: int, seed: int = 0, noise: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """n unit-norm embeddings of `classes` classes: mean + 4 shared style directions + anisotropic noise."""
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(1234 + dim * 7 + classes)  # the same classes for train and test draws
    means = world.normal(size=(classes, dim))
    style = world.normal(size=(4, dim)) * 2.0
    spread = np.exp(world.normal(size=dim) * 0.5)
    y = rng.integers(0, classes, n)
    x = means[y] + rng.normal(size=(n, 4)) @ style + noise * rng.normal(size=(n, dim)) * spread
    return x / np.linalg.norm(x, axis=1, keepdims=True), y.astype(np.int64)


def run_probe(train_x, train_y, test_x, test_y, seed: int) -> dict:
    """The repository's probe: its sweep, the refit and the test score, timed together."""
    from eval.linear_probe import linear_probe

    start = time.perf_counter()
    result = linear_probe(train_x, train_y, test_x, test_y, seed=seed)
    seconds = time.perf_counter() - start
    return {"fits": len(result.sweep) + 1, "seconds": seconds, "C": result.C, "top1": result.top1}


def run_cv(train_x, train_y, test_x, test_y, folds: int, grid: int, seed: int) -> dict:
    """scikit-learn's LogisticRegressionCV with `grid` C values over the same range and `folds` folds."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    clf = LogisticRegressionCV(
        Cs=np.logspace(-6, 6, grid),
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        l1_ratios=(0.0,),
        solver="lbfgs",
        max_iter=1000,
        scoring="accuracy",
        use_legacy_attributes=False,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the largest C
        clf.fit(train_x, train_y)
    seconds = time.perf_counter() - start
    top1 = float((clf.predict(test_x) == test_y).mean())
    return {"fits": folds * grid + 1, "seconds": seconds, "C": float(clf.C_), "top1": top1}


def parse_size(text: str) -> tuple[int, int, int]:
    """'5000x512x20' -> (train examples, dims, classes)."""
    n, d, k = (int(v) for v in text.lower().split("x"))
    return n, d, k


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default="5000x512x20,1000x128x10", help="comma-separated TRAINxDIMSxCLASSES (test is TRAIN/4)"
    )
    parser.add_argument("--noise", type=float, default=3.0, help="noise scale; higher is harder and slower at large C")
    parser.add_argument("--folds", type=int, default=5, help="LogisticRegressionCV's folds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; C grid 1e-6..1e6 of 21 values in both arms\n")
    print("| features | method | fits | seconds | chosen C | test top-1 | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        n, d, k = parse_size(size)
        train_x, train_y = synthetic_features(n, d, k, args.seed, args.noise)
        test_x, test_y = synthetic_features(max(n // 4, k), d, k, args.seed + 1, args.noise)
        probe = run_probe(train_x, train_y, test_x, test_y, args.seed)
        cv = run_cv(train_x, train_y, test_x, test_y, args.folds, 21, args.seed)
        label = f"{n} x {d}, {k} classes"
        for name, arm in (
            ("linear_probe (val split, coarse+fine)", probe),
            (f"LogisticRegressionCV ({args.folds}-fold)", cv),
        ):
            print(
                f"| {label} | {name} | {arm['fits']} | {arm['seconds']:.2f} | {arm['C']:.3g} | {arm['top1']:.4f} | "
                f"{arm['seconds'] / probe['seconds']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
