"""Compute scaling (the paper's Figure 9): zero-shot error of models of several widths, trained on the same data with
the same seed and schedule, against their training compute (GFLOPs per sample x samples seen), with the least-squares
line of log10 error on log10 compute."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from eval.studies import MEAN, pyplot, row, save_figure, standard_error, zeroshot_rows
from wit_builder.errors import WitError

STUDY = "scaling"
ERROR = "zeroshot_error"
FINDING = (
    "Paper (Figure 9): over 44x compute across 5 ResNet CLIP models, average zero-shot error on 36 datasets follows a "
    "log-log linear trend in training compute, i.e. a power law in compute, though single datasets scatter around it."
)


class Fit(NamedTuple):
    """log10(error) = slope * log10(compute) + intercept, with its coefficient of determination."""

    slope: float
    intercept: float
    r2: float


def count_flops(module, *inputs) -> int:
    """FLOPs of one forward of `module` on `inputs` as torch.utils.flop_counter counts them (matmuls, convolutions,
    attention; 2 per multiply-add; elementwise ops, norms and softmax not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def gflops_per_sample(model_config, image_size: int | None = None, context_length: int | None = None) -> float:
    """Training GFLOPs per image-text pair: one forward of the CLIP on one image and one caption, counted on the meta
    device, times 3 (a backward costs about twice the forward: the usual estimate, not a measured count)."""
    import dataclasses

    import torch

    from trainer.models.clip import CLIP

    vision = dataclasses.replace(model_config.vision, image_size=image_size or model_config.vision.image_size)
    text = dataclasses.replace(model_config.text, context_length=context_length or model_config.text.context_length)
    config = model_config.replace(vision=vision, text=text)
    with torch.device("meta"):
        model = CLIP(config)
        images = torch.zeros(1, 3, vision.image_size, vision.image_size)
        tokens = torch.zeros(1, text.context_length, dtype=torch.long)
    return 3 * count_flops(model, images, tokens) / 1e9


def fit_loglog(compute: Sequence[float], error: Sequence[float]) -> Fit:
    """Least squares of log10(error) on log10(compute); needs two or more distinct positive computes, positive errors."""
    import numpy as np

    x, y = np.asarray(compute, dtype=np.float64), np.asarray(error, dtype=np.float64)
    if len(x) != len(y) or len(set(x.tolist())) < 2 or (x <= 0).any() or (y <= 0).any():
        raise ValueError("fit_loglog needs paired positive values at two or more distinct computes")
    lx, ly = np.log10(x), np.log10(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    residual = float(((ly - (slope * lx + intercept)) ** 2).sum())
    total = float(((ly - ly.mean()) ** 2).sum())
    return Fit(float(slope), float(intercept), 1.0 - residual / total if total > 0 else 1.0)


def check_corpus(samples: int, batch_size: int, data: str, study: str = STUDY) -> None:
    """A WitError unless the corpus fills at least one training batch (every arm sees the same samples)."""
    arm = "width" if study == STUDY else "arm"
    if samples < batch_size:
        raise WitError(
            f"--data {data} holds {samples} samples, but the {study} study needs at least {batch_size} (one "
            f"--batch-size {batch_size} batch per {arm}): build a bigger corpus or lower --batch-size"
        )


def scaling_rows(
    evaluator, arm: str, tasks: list[str], gflops: float, samples: int, seed: int, train_s: float = math.nan
) -> list[dict]:
    """One arm's rows at x = gflops * samples (training GFLOP): zero-shot error per task and averaged over the tasks
    (dataset `mean`), and the arm's facts as `mean` rows: gflops_per_sample, samples_seen, train_s."""
    compute = gflops * samples
    rows = zeroshot_rows(evaluator, tasks, STUDY, arm, compute, seed, {ERROR: "acc1"}, error=True)
    n_total, mean_chance = (rows[-1]["n_test"], rows[-1]["chance"]) if rows else (0, math.nan)
    for metric, value in (("gflops_per_sample", gflops), ("samples_seen", samples), ("train_s", train_s)):
        rows.append(row(MEAN, STUDY, arm, compute, metric, value, seed, n_total, mean_chance))
    return rows


def points(rows: list[dict], dataset: str = MEAN) -> list[dict]:
    """The study's zero-shot error rows of one dataset (the task average by default), by compute."""
    found = [r for r in rows if r["task"] == STUDY and r["metric"] == ERROR and r["dataset"] == dataset]
    return sorted(found, key=lambda r: r["x"])


def fact(rows: list[dict], arm: str, seed: int, metric: str) -> float:
    """An arm's gflops_per_sample, samples_seen or train_s (nan when absent)."""
    for r in rows:
        if (r["task"], r["dataset"], r["arm"], r["seed"], r["metric"]) == (STUDY, MEAN, arm, seed, metric):
            return r["value"]
    return math.nan


def try_fit(rows: list[dict]) -> Fit | None:
    """The log-log fit of the task-averaged errors, or None when they cannot give one (one compute, a zero error)."""
    mean = points(rows)
    try:
        return fit_loglog([r["x"] for r in mean], [r["value"] for r in mean])
    except ValueError:
        return None


def reading(rows: list[dict], fit: Fit | None) -> str:
    """An honest one-paragraph reading of the measured points: distance from chance first, then the fitted trend."""
    mean = points(rows)
    if not mean:
        return "No points were measured."
    near_chance = [
        r for r in mean if abs(r["value"] - (1 - r["chance"])) <= 2 * standard_error(r["value"], r["n_test"])
    ]
    span = max(r["x"] for r in mean) / min(r["x"] for r in mean)
    if len(near_chance) == len(mean):
        return (
            "Every width's error is within two standard errors of chance, so the fitted slope measures noise, not a "
            "scaling law: train on a larger corpus or for more epochs before reading it."
        )
    if 2 * len(near_chance) >= len(mean):
        return (
            f"{len(near_chance)} of {len(mean)} widths are within two standard errors of chance: too few points above "
            "it to read a trend (slope "
            + (f"{fit.slope:.3f}" if fit is not None else "undefined")
            + "); train on a larger corpus or for more epochs before reading it."
        )
    if fit is None:
        return "The points cannot be fitted on log-log axes (one compute, or a zero error)."
    trend = "falls" if fit.slope < 0 else "does not fall"
    return (
        f"Error {trend} with compute here: slope {fit.slope:.3f} (error x{10**fit.slope:.2f} per 10x compute), "
        f"r^2 {fit.r2:.2f}, over {span:.1f}x compute from {len(mean)} point(s), "
        f"{len(near_chance)} of them within two standard errors of chance. A few demo-scale points fit almost any "
        "monotone curve; the paper's trend rests on 5 models trained on 400M pairs, so read the direction, not the "
        "exponent."
    )


def summary(rows: list[dict]) -> str:
    """A Markdown table per arm and seed (GFLOPs/sample, samples seen, training GFLOP, error per task and averaged),
    the fitted line, the paper's finding and an honest reading."""
    tasks = sorted({r["dataset"] for r in rows if r["task"] == STUDY and r["metric"] == ERROR} - {MEAN})
    head = "| width | seed | GFLOPs/sample | samples seen | compute (GFLOP) | train s | "
    lines = [head + " | ".join(tasks) + " | mean error | chance error |", "|" + "---|" * (len(tasks) + 8)]
    for r in points(rows):
        arm, seed = r["arm"], r["seed"]
        per_task = {
            p["dataset"]: p["value"] for t in tasks for p in points(rows, t) if (p["arm"], p["seed"]) == (arm, seed)
        }
        cells = [f"{100 * per_task[t]:.1f}" if t in per_task else "-" for t in tasks]
        lines.append(
            f"| {arm} | {seed} | {fact(rows, arm, seed, 'gflops_per_sample'):.4f} | "
            f"{fact(rows, arm, seed, 'samples_seen'):,.0f} | {r['x']:,.1f} | {fact(rows, arm, seed, 'train_s'):.1f} | "
            f"{' | '.join(cells)} | {100 * r['value']:.1f} ± {100 * standard_error(r['value'], r['n_test']):.1f} | "
            f"{100 * (1 - r['chance']):.1f} |"
        )
    fit = try_fit(rows)
    line = (
        f"Fitted line: log10(error) = {fit.slope:.4f} log10(GFLOP) {fit.intercept:+.4f} (r^2 {fit.r2:.3f})."
        if fit
        else "Fitted line: none (it needs two computes and non-zero errors)."
    )
    note = (
        "Errors in % (zero-shot top-1 error; mean ± one binomial standard error over all test images). GFLOPs/sample: "
        "one image-text forward counted by torch's FlopCounterMode, x3 for forward and backward."
    )
    return "\n".join(lines) + f"\n\n{note}\n\n{line}\n\n{FINDING}\n\nReading: {reading(rows, fit)}\n"


def plot_scaling(rows: list[dict], path: str) -> None:
    """Log-log: task-averaged zero-shot error against training compute, one colour per width (single tasks faint),
    with the fitted line, like Figure 9."""
    plt = pyplot()
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    mean = points(rows)
    arms = list(dict.fromkeys(r["arm"] for r in mean))
    tasks = sorted({r["dataset"] for r in rows if r["task"] == STUDY and r["metric"] == ERROR} - {MEAN})
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=100)
    for i, arm in enumerate(arms):
        colour = f"C{i}"
        for task in tasks:
            single = [r for r in points(rows, task) if r["arm"] == arm and r["value"] > 0]
            ax.scatter([r["x"] for r in single], [r["value"] for r in single], s=14, color=colour, alpha=0.3)
        own = [r for r in mean if r["arm"] == arm and r["value"] > 0]
        ax.scatter([r["x"] for r in own], [r["value"] for r in own], s=60, color=colour, label=arm, zorder=3)
    fit = try_fit(rows)
    if fit is not None:
        xs = np.geomspace(min(r["x"] for r in mean) / 1.5, max(r["x"] for r in mean) * 1.5, 50)
        label = f"fit: error ∝ compute^{fit.slope:.3f} (r² {fit.r2:.2f})"
        ax.plot(xs, 10 ** (fit.slope * np.log10(xs) + fit.intercept), "k--", lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    percent = FuncFormatter(lambda v, _: f"{100 * v:.3g}%")
    ax.yaxis.set_major_formatter(percent)
    ax.yaxis.set_minor_formatter(percent)
    ax.set_xlabel("training compute (GFLOP = GFLOPs per sample x samples seen)")
    ax.set_ylabel("zero-shot error (mean over tasks; faint: single tasks)")
    ax.set_title("Compute scaling (paper: Figure 9)")
    ax.legend(fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)
