"""The compute-scaling study's parts without Ray: FLOP counts (a hand count for a Linear layer and for a whole tiny
CLIP; growing with width), the log-log fit (exact on a constructed power law), rows, the summary and the plot."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from eval.studies import results_table
from eval.studies.scaling import (
    check_corpus,
    count_flops,
    fit_loglog,
    gflops_per_sample,
    plot_scaling,
    points,
    scaling_rows,
    summary,
)
from trainer.config import MODELS
from wit_builder.errors import WitError

WIDTHS = ("tiny-vit-w32", "tiny-vit-w64", "tiny-vit-w128")


def transformer_flops(tokens: int, width: int, layers: int) -> int:
    """Matmul FLOPs of a pre-norm transformer: qkv, out and a 4x MLP (24 d^2 per token) plus QK^T and AV (4 L d)."""
    return layers * 2 * tokens * (12 * width * width + 2 * tokens * width)


def clip_flops(config) -> int:
    """A hand count of one image-text forward of our ViT CLIP: patch conv, both transformers, both projections."""
    v, t = config.vision, config.text
    patches = (v.image_size // v.patch_size) ** 2
    vision = 2 * patches * 3 * v.patch_size**2 * v.width + transformer_flops(patches + 1, v.width, v.layers)
    text = transformer_flops(t.context_length, t.width, t.layers)
    return vision + text + 2 * config.embed_dim * (v.width + t.width)


def test_a_linear_layer_counts_two_flops_per_multiply_add():
    layer = torch.nn.Linear(10, 20)
    assert count_flops(layer, torch.zeros(1, 10)) == 2 * 10 * 20
    assert count_flops(layer, torch.zeros(3, 10)) == 3 * 2 * 10 * 20


def test_gflops_per_sample_is_three_forwards_of_the_hand_count_and_grows_with_width():
    counts = [gflops_per_sample(MODELS[n]) for n in WIDTHS]
    for name, gflops in zip(WIDTHS, counts):
        assert gflops == pytest.approx(3 * clip_flops(MODELS[name]) / 1e9, rel=1e-9)
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] / counts[0] > 10  # both towers widen: ~width^2
    assert gflops_per_sample(MODELS["tiny-vit-w64"], image_size=32) < counts[1]  # 16 patches instead of 64
    assert gflops_per_sample(MODELS["tiny-vit-w64"], context_length=16) < counts[1]


def test_the_widths_share_everything_but_width():
    configs = [MODELS[n] for n in WIDTHS]
    assert [c.vision.width for c in configs] == [32, 64, 128] == [c.text.width for c in configs]
    shared = {(c.embed_dim, c.vision.layers, c.vision.patch_size, c.vision.image_size, c.text.layers) for c in configs}
    assert shared == {(128, 4, 8, 64, 4)}
    assert MODELS["tiny-vit"].vision.head_width == 64  # the existing tiny-vit is unchanged


def test_fit_loglog_recovers_a_power_law_exactly():
    compute = np.array([1.0, 10.0, 44.0, 300.0])
    fit = fit_loglog(compute, 3.0 * compute**-0.2)
    assert fit.slope == pytest.approx(-0.2) and fit.intercept == pytest.approx(math.log10(3.0))
    assert fit.r2 == pytest.approx(1.0)
    noisy = fit_loglog(compute, 3.0 * compute**-0.2 * np.array([1.1, 0.9, 1.05, 0.97]))
    assert noisy.r2 < 0.99 and noisy.slope < 0
    for bad in (([1.0, 1.0], [0.5, 0.4]), ([1.0, 2.0], [0.5, 0.0]), ([1.0, 2.0], [0.5])):
        with pytest.raises(ValueError):
            fit_loglog(*bad)


def test_a_corpus_smaller_than_a_batch_is_one_clear_line():
    check_corpus(64, 64, "OUT")
    with pytest.raises(WitError, match=r"^--data OUT holds 20 samples, but the scaling study needs at least 64 "):
        check_corpus(20, 64, "OUT")


class FakeEvaluator:
    """Zero-shot top-1 fixed per task, as the study reads it from an Evaluator."""

    def __init__(self, acc: dict[str, float], n_test: int = 100, classes: int = 10):
        self.acc, self.n, self.classes = acc, n_test, classes

    def features(self, task, split):
        return SimpleNamespace(x=np.zeros((self.n, 4)), data=SimpleNamespace(classnames=[str(i) for i in range(10)]))

    def zeroshot(self, task):
        return SimpleNamespace(record={"metrics": {"acc1": self.acc[task]}})


def power_law_rows() -> list[dict]:
    """Three widths whose task-averaged error is exactly 0.5 * compute^-0.1."""
    rows = []
    for name in WIDTHS:
        gflops = gflops_per_sample(MODELS[name])
        error = 0.5 * (gflops * 1000) ** -0.1
        acc = {"digits": 1 - (error - 0.05), "emoji": 1 - (error + 0.05)}
        rows += scaling_rows(FakeEvaluator(acc), name, ["digits", "emoji"], gflops, 1000, 0, 12.5)
    return rows


def test_rows_put_each_width_at_its_training_compute():
    rows = power_law_rows()
    assert results_table(rows).num_rows == 3 * 6
    mean = points(rows)
    assert [r["arm"] for r in mean] == list(WIDTHS)
    assert [r["x"] for r in mean] == pytest.approx([gflops_per_sample(MODELS[n]) * 1000 for n in WIDTHS])
    assert [r["value"] for r in mean] == pytest.approx([0.5 * r["x"] ** -0.1 for r in mean])
    assert {r["n_test"] for r in mean} == {200} and [r["chance"] for r in mean] == pytest.approx([0.1] * 3)
    digits = points(rows, "digits")
    assert [r["value"] for r in digits] == pytest.approx([m["value"] - 0.05 for m in mean])
    facts = {(r["arm"], r["metric"]): r["value"] for r in rows if r["metric"] != "zeroshot_error"}
    assert facts[("tiny-vit-w32", "samples_seen")] == 1000 and facts[("tiny-vit-w64", "train_s")] == 12.5


def test_summary_and_plot_of_a_power_law(tmp_path):
    rows = power_law_rows()
    text = summary(rows)
    assert "| tiny-vit-w32 | 0 | " in text and "| digits | emoji | mean error | chance error |" in text
    assert "log10(error) = -0.1000 log10(GFLOP) -0.3010 (r^2 1.000)" in text
    assert "Figure 9" in text and "a power law in compute" in text and "44x compute" in text
    assert "Error falls with compute here: slope -0.100" in text
    path = tmp_path / "scaling.png"
    plot_scaling(rows, str(path))
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (700, 480)


def test_the_reading_says_when_every_width_is_at_chance():
    rows = []
    for name in WIDTHS:
        acc = {"digits": 0.1 + 0.002 * len(rows)}  # 10.0, 11.0, 12.0 % on 100 images: within 2 SE of 10 %
        rows += scaling_rows(FakeEvaluator(acc), name, ["digits"], gflops_per_sample(MODELS[name]), 500, 0)
    text = summary(rows)
    assert "within two standard errors of chance, so the fitted slope measures noise" in text
    assert "| 90.0 |" in text  # the chance error of ten classes


def test_the_reading_refuses_a_trend_when_most_widths_are_at_chance():
    """Two of three widths at chance (10 %), one clearly above: no trend is read, the count is given."""
    rows = []
    for name, accuracy in zip(WIDTHS, (0.10, 0.11, 0.40)):
        rows += scaling_rows(
            FakeEvaluator({"digits": accuracy}), name, ["digits"], gflops_per_sample(MODELS[name]), 500, 0
        )
    text = summary(rows)
    assert "2 of 3 widths are within two standard errors of chance: too few points above it" in text
    assert "Error falls with compute here" not in text
