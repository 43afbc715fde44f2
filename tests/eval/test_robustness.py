"""Effective robustness: on points placed exactly on a known logit line the fitted trend and the effective robustness
equal the hand-computed values; the whole pipeline on synthetic sources, its errors, and the plot file."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from eval.robustness import (
    ProbePoint,
    RobustnessResult,
    clip_accuracy,
    fit_trend,
    plot_robustness,
    robustness,
)
from wit_builder.errors import WitError


def _sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _on_line(a: float = 0.8, b: float = -0.5) -> RobustnessResult:
    """Probe points exactly on logit(ood) = a logit(id) + b for target "stamps", and a zero-shot point above it."""
    ids = [0.2, 0.35, 0.5, 0.7, 0.9]
    points = [ProbePoint(f"p{i}", 1.0, {"art": p, "stamps": _sig(a * _logit(p) + b)}) for i, p in enumerate(ids)]
    return RobustnessResult(
        train_source="art",
        targets=["stamps"],
        points=points,
        trends={"stamps": fit_trend(ids, [p.accuracy["stamps"] for p in points], 1000, 1000)},
        zero_shot={"art": 0.6, "stamps": 0.55},
        self_probe={"art": 0.9, "stamps": 0.8},
        n_test={"art": 1000, "stamps": 1000},
    )


def test_trend_and_effective_robustness_equal_the_hand_computation():
    result = _on_line()
    a, b = result.trends["stamps"]
    assert a == pytest.approx(0.8, abs=1e-12) and b == pytest.approx(-0.5, abs=1e-12)
    (row,) = result.rows()
    trend = 1 / (1 + math.exp(-(0.8 * math.log(0.6 / 0.4) - 0.5)))  # 0.4562...
    assert row["trend_at_zero_shot_id"] == pytest.approx(trend, abs=1e-12)
    assert row["effective_robustness"] == pytest.approx(0.55 - trend, abs=1e-12)
    assert row["effective_robustness"] == pytest.approx(0.0938, abs=1e-4)
    assert (row["probe_id"], row["probe_ood"]) == (0.9, result.points[-1].accuracy["stamps"])
    assert (row["target"], row["zero_shot_id"], row["zero_shot_ood"], row["target_self_probe"]) == (
        "stamps", 0.6, 0.55, 0.8,
    )  # fmt: skip


def test_accuracies_of_zero_and_one_are_clipped_half_an_example_in():
    assert clip_accuracy([0.0, 0.5, 1.0], 100).tolist() == [0.005, 0.5, 0.995]
    a, b = fit_trend([0.0, 1.0], [0.0, 1.0], 100, 100)  # (0.005, 0.995) both ways: the line y = x
    assert a == pytest.approx(1.0) and b == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(WitError, match="no trend to fit"):
        fit_trend([0.5, 0.5], [0.2, 0.3], 100, 100)


def _sources(seed: int = 0):
    """Three sources of the same 4 classes: 'art' and 'stamps' share class means, 'emoji' is shifted further."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(4, 8))
    out = {}
    for name, shift, noise in (("art", 0.0, 1.5), ("stamps", 0.6, 1.5), ("emoji", 1.2, 2.0)):
        offset = shift * rng.normal(size=(4, 8))
        arrays = []
        for n in (60, 80):
            y = np.arange(n) % 4
            arrays += [means[y] + offset[y] + noise * rng.normal(size=(n, 8)), y.astype(np.int64)]
        out[name] = tuple(arrays)
    return out


def test_robustness_on_synthetic_sources():
    sources = _sources()
    zs = {"art": 0.7, "stamps": 0.6, "emoji": 0.5}
    kw = {"shots": (1, 2, 4, 8), "coarse_steps": 5, "fine_steps": 2}
    result = robustness(sources, zs, "art", **kw)
    assert [p.name for p in result.points] == ["1-shot", "2-shot", "4-shot", "8-shot", "full"]
    assert result.targets == ["stamps", "emoji"]
    for p in result.points:  # each accuracy is its probe scored on that source's test set
        assert set(p.accuracy) == {"art", "stamps", "emoji"}
        assert all(v * 80 == round(v * 80) for v in p.accuracy.values())
    assert result.self_probe["art"] == result.points[-1].accuracy["art"]
    for t in result.targets:  # the trend is least squares on clipped logits, written out
        x = np.array([_logit(float(clip_accuracy(p.accuracy["art"], 80))) for p in result.points])
        y = np.array([_logit(float(clip_accuracy(p.accuracy[t], 80))) for p in result.points])
        slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
        assert result.trends[t] == pytest.approx((slope, y.mean() - slope * x.mean()), abs=1e-9)
    rows = {r["target"]: r for r in result.rows()}
    a, b = result.trends["emoji"]
    assert rows["emoji"]["effective_robustness"] == pytest.approx(0.5 - _sig(a * _logit(0.7) + b), abs=1e-12)
    again = robustness(sources, zs, "art", **kw)
    assert again.rows() == result.rows()


def test_missing_sources_and_different_classes_are_one_line_errors():
    sources = _sources()
    zs = {"art": 0.7, "stamps": 0.6, "emoji": 0.5}
    with pytest.raises(WitError, match="'clipart' is not among the sources"):
        robustness(sources, zs, "clipart")
    with pytest.raises(WitError, match=r"no zero-shot accuracy for source\(s\) \['emoji'\]"):
        robustness(sources, {"art": 0.7, "stamps": 0.6}, "art")
    tx, ty, sx, sy = sources["emoji"]
    sources["emoji"] = (tx, ty % 3, sx, sy % 3)
    with pytest.raises(WitError, match="source 'emoji' has classes"):
        robustness(sources, zs, "art")


def test_plot_is_a_png_of_the_expected_size(tmp_path):
    path = tmp_path / "robustness.png"
    plot_robustness(_on_line(), str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (800, 800)
    assert len(data) > 20_000  # drawn, not blank
