"""Effective robustness to distribution shift (the paper's section 3.3): how far zero-shot CLIP sits above the trend
that linear probes trained on one source follow when tested on other sources of the same classes.

The baseline family is probes trained on `train_source` at several shot counts plus the full probe. Per target
source, logit(accuracy on target) = a * logit(accuracy on train_source) + b is fitted by least squares through the
probe points; effective robustness = zero-shot accuracy on the target - the trend at zero-shot's train_source
accuracy. Accuracies are clipped to [0.5 / n_test, 1 - 0.5 / n_test] (half a test example) before the logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.linear_probe import fit_few_shot, fit_probe, shot_indices
from wit_builder.errors import WitError

Source = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # train_x, train_y, test_x, test_y


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p))."""
    p = np.asarray(p, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    """The inverse of `logit`."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def clip_accuracy(acc: np.ndarray | float, n_test: int) -> np.ndarray:
    """Accuracy kept half a test example away from 0 and 1, so that its logit is finite."""
    eps = 0.5 / n_test
    return np.clip(np.asarray(acc, dtype=np.float64), eps, 1 - eps)


def fit_trend(id_acc: Sequence[float], ood_acc: Sequence[float], n_id: int, n_ood: int) -> tuple[float, float]:
    """(a, b) of the least-squares line logit(ood) = a * logit(id) + b through the points (clipped first)."""
    x = logit(clip_accuracy(id_acc, n_id))
    y = logit(clip_accuracy(ood_acc, n_ood))
    if len(x) < 2 or np.ptp(x) == 0:
        raise WitError("the probes' in-distribution accuracies are all equal: no trend to fit; give more shot counts")
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def trend_at(a: float, b: float, id_acc: float, n_id: int) -> float:
    """The trend's target accuracy at an in-distribution accuracy."""
    return float(sigmoid(a * logit(clip_accuracy(id_acc, n_id)) + b))


@dataclass
class ProbePoint:
    """One probe of the baseline family: its name ("4-shot", "full"), C, and accuracy on each source's test set."""

    name: str
    C: float
    accuracy: dict[str, float]


@dataclass
class RobustnessResult:
    """The baseline family, the trend per target, the zero-shot points and each source's full probe on itself."""

    train_source: str
    targets: list[str]
    points: list[ProbePoint]
    trends: dict[str, tuple[float, float]]  # target -> (a, b) in logit space
    zero_shot: dict[str, float]  # source -> zero-shot top-1 on its test set
    self_probe: dict[str, float]  # source -> full probe trained and tested on that source
    n_test: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One row per target: zero-shot and full-probe accuracies in and out of distribution, the trend at zero-shot's
        in-distribution accuracy, effective robustness, and the target's own full probe."""
        full = self.points[-1]
        out = []
        for t in self.targets:
            a, b = self.trends[t]
            zs_id, zs_ood = self.zero_shot[self.train_source], self.zero_shot[t]
            trend = trend_at(a, b, zs_id, self.n_test[self.train_source])
            out.append(
                {
                    "target": t,
                    "zero_shot_id": zs_id,
                    "zero_shot_ood": zs_ood,
                    "probe_id": full.accuracy[self.train_source],
                    "probe_ood": full.accuracy[t],
                    "trend_at_zero_shot_id": trend,
                    "effective_robustness": zs_ood - trend,
                    "target_self_probe": self.self_probe[t],
                }
            )
        return out


def _classes(src: Source) -> set[int]:
    return set(np.unique(src[1]).tolist()) | set(np.unique(src[3]).tolist())


def check_sources(sources: dict[str, Source], zero_shot_top1: dict[str, float], train_source: str) -> None:
    """WitError when train_source or a zero-shot accuracy is missing, or sources do not share one set of classes."""
    if train_source not in sources:
        raise WitError(f"train source {train_source!r} is not among the sources {sorted(sources)}")
    if len(sources) < 2:
        raise WitError("robustness needs at least one source besides the train source")
    missing = sorted(set(sources) - set(zero_shot_top1))
    if missing:
        raise WitError(f"no zero-shot accuracy for source(s) {missing}: give zero_shot_top1 for every source")
    ref = _classes(sources[train_source])
    for name, src in sources.items():
        if _classes(src) != ref:
            raise WitError(
                f"source {name!r} has classes {sorted(_classes(src))[:10]}..., not those of {train_source!r}"
            )


def robustness(
    sources: dict[str, Source],
    zero_shot_top1: dict[str, float],
    train_source: str,
    *,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    seed: int = 0,
    c_range: tuple[float, float] = (1e-6, 1e6),
    coarse_steps: int = 13,
    fine_steps: int = 8,
    max_iter: int = 1000,
) -> RobustnessResult:
    """Probes on train_source (k-shot for each k in `shots`, drawn with `seed`, then the full probe), each scored on
    every source's test set; a logit-linear trend per other source; the full probe of each source on itself."""
    check_sources(sources, zero_shot_top1, train_source)
    sweep = {"c_range": c_range, "coarse_steps": coarse_steps, "fine_steps": fine_steps, "max_iter": max_iter}
    tx, ty = np.asarray(sources[train_source][0]), np.asarray(sources[train_source][1], dtype=np.int64)

    def scored(name: str, clf, c: float) -> ProbePoint:
        acc = {s: float((clf.predict(src[2]) == np.asarray(src[3])).mean()) for s, src in sources.items()}
        return ProbePoint(name, float(c), acc)

    points = []
    for k in shots:
        idx = shot_indices(ty, k, seed)
        points.append(scored(f"{k}-shot", *fit_few_shot(tx[idx], ty[idx], **sweep)))
    self_probe = {}
    for name, (x, y, test_x, test_y) in sources.items():
        clf, c = fit_probe(x, y, seed=seed, **sweep)[:2]
        if name == train_source:
            points.append(scored("full", clf, c))
        self_probe[name] = float((clf.predict(test_x) == np.asarray(test_y)).mean())
    n_test = {name: len(src[3]) for name, src in sources.items()}
    targets = [s for s in sources if s != train_source]
    trends = {
        t: fit_trend(
            [p.accuracy[train_source] for p in points], [p.accuracy[t] for p in points], n_test[train_source], n_test[t]
        )
        for t in targets
    }
    return RobustnessResult(train_source, targets, points, trends, dict(zero_shot_top1), self_probe, n_test)


def plot_robustness(result: RobustnessResult, path: str, size_px: int = 800) -> None:
    """A square PNG of size_px in the paper's style: logit axes, accuracy on train_source (x) vs on each shifted
    source (y), the y = x line of an ideal robust model, probe points with their trend, zero-shot as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    src = result.train_source
    n_src = result.n_test[src]
    xs = [p.accuracy[src] for p in result.points] + [result.zero_shot[src]]
    ys = [p.accuracy[t] for p in result.points for t in result.targets] + [result.zero_shot[t] for t in result.targets]
    lo = float(clip_accuracy(min(xs + ys), n_src)) * 0.7
    hi = 1 - (1 - float(clip_accuracy(max(xs + ys), n_src))) * 0.7
    dpi = 100
    fig, ax = plt.subplots(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    ax.set_xscale("logit")
    ax.set_yscale("logit")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    grid = sigmoid(np.linspace(logit(lo), logit(hi), 200))
    ax.plot(grid, grid, "k--", lw=1.2, label="y = x: ideal robust model")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, t in enumerate(result.targets):
        color = colors[i % len(colors)]
        a, b = result.trends[t]
        ax.plot(grid, sigmoid(a * logit(grid) + b), "-", color=color, lw=1.5, label=f"{t}: logit-linear fit")
        ax.scatter(
            [p.accuracy[src] for p in result.points], [p.accuracy[t] for p in result.points], color=color, s=30,
            label=f"{t}: linear probes on {src}",
        )  # fmt: skip
        ax.scatter(
            [result.zero_shot[src]], [result.zero_shot[t]], marker="*", s=260, color=color, edgecolor="black",
            label=f"{t}: zero-shot CLIP", zorder=5,
        )  # fmt: skip
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"top-1 accuracy on {src} (logit scale)", fontsize=12)
    ax.set_ylabel("top-1 accuracy on the shifted source (logit scale)", fontsize=12)
    ax.set_title(f"Effective robustness: probes trained on {src}", fontsize=13)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
