"""Zero-shot versus few-shot linear probes (the paper's Figure 6): per task, the top-1 of logistic-regression probes
on k labelled images per class (several seeds) against the same model's zero-shot classifier, and how many shots
zero-shot is worth: where the probe's curve, linear in log2(k), first reaches zero-shot accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from eval.studies import pyplot, row, save_figure
from wit_builder.errors import WitError

STUDY = "fewshot"
FINDING = (
    "Paper (Figure 6): zero-shot CLIP matches a 4-shot linear probe on its own features on average over 20 datasets, "
    "and its 16-shot probe only on some of them."
)


def check_shots(train_labels: np.ndarray, shots: Sequence[int], task: str) -> None:
    """A WitError unless every class of the training split has at least max(shots) images."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64))
    counts = counts[counts > 0]
    smallest = int(counts.min()) if counts.size else 0
    if not shots or min(shots) < 1:
        raise WitError(f"--shots must be positive integers, got {list(shots)}")
    if max(shots) > smallest:
        raise WitError(
            f"{max(shots)}-shot needs {max(shots)} training images in every class, but the smallest class of {task} "
            f"has {smallest}: give --shots up to {smallest}"
        )


def fit_shots(train_labels: np.ndarray, shots: Sequence[int]) -> list[int]:
    """The shots every class of the training split can give (the default list is cut per task, not refused)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if (counts > 0).any() else 0
    return [k for k in shots if k <= smallest]


def fewshot_rows(
    evaluator, tasks: list[str], shots: Sequence[int], seeds: Sequence[int], strict: bool = True
) -> list[dict]:
    """Per task: the zero-shot top-1 (arm `zeroshot`, x 0), each (k, seed) probe's top-1 (arm `probe`, x k), as
    `eval.linear_probe.few_shot` gives them on the features the Evaluator's probes see, and `worth_shots` (arm
    `worth`, metric `zeroshot_shots`: 0 below the smallest k, inf beyond the largest). Not `strict` (the default
    list): a task whose smallest class is too small for some shots gets the ones it can give."""
    from eval.linear_probe import few_shot

    rows = []
    for task in tasks:
        train, test = evaluator.features(task, "train"), evaluator.features(task, "test")
        wanted = shots
        if not strict and fit_shots(train.labels, shots):
            shots = fit_shots(train.labels, wanted)
        check_shots(train.labels, shots, task)
        n, chance = len(test.labels), 1 / len(test.data.classnames)
        zs = evaluator.zeroshot(task).record["metrics"]["acc1"]
        rows.append(row(task, STUDY, "zeroshot", 0, "acc1", zs, 0, n, chance))
        train_x, test_x = evaluator._probe_inputs(train.x, test.x)
        results = few_shot(train_x, train.labels, test_x, test.labels, shots=tuple(shots), seeds=tuple(seeds))
        for r in results:
            rows += [row(task, STUDY, "probe", r.k, "acc1", v, s, n, chance) for s, v in zip(r.seeds, r.top1)]
        worth = worth_shots([r.k for r in results], [r.mean_top1 for r in results], zs)
        rows.append(row(task, STUDY, "worth", 0, "zeroshot_shots", worth, 0, n, chance))
        shots = wanted
    return rows


def worth_shots(shots: Sequence[int], probe: Sequence[float], zero_shot: float) -> float:
    """The k at which the probe's mean curve, linear in log2(k) between measured shots, first reaches `zero_shot`;
    0.0 when even the smallest k beats zero-shot, inf when no k reaches it."""
    if len(shots) != len(probe) or not shots:
        raise ValueError("need one probe accuracy per shot count")
    pairs = sorted(zip(shots, probe))
    if pairs[0][1] > zero_shot:
        return 0.0
    for (k0, a0), (k1, a1) in zip(pairs, pairs[1:]):
        if a0 >= zero_shot:
            return float(k0)
        if a1 >= zero_shot:
            t = (zero_shot - a0) / (a1 - a0)
            return float(2 ** (math.log2(k0) + t * (math.log2(k1) - math.log2(k0))))
    return float(pairs[-1][0]) if pairs[-1][1] >= zero_shot else math.inf


def format_worth(value: float, shots: Sequence[int]) -> str:
    """'< 1', '> 16' or the number of shots to one decimal."""
    if value == 0.0:
        return f"< {min(shots)}"
    if math.isinf(value):
        return f"> {max(shots)}"
    return f"{value:.1f}"


def curves(rows: list[dict]) -> dict[str, dict]:
    """task -> {shots, mean, lo, hi (over seeds, per k), zeroshot, chance, worth} from the fewshot rows."""
    out: dict[str, dict] = {}
    for r in rows:
        if r["task"] != STUDY:
            continue
        c = out.setdefault(r["dataset"], {"probe": {}, "chance": r["chance"], "n_test": r["n_test"]})
        if r["arm"] == "probe":
            c["probe"].setdefault(int(r["x"]), []).append(r["value"])
        elif r["arm"] == "zeroshot":
            c["zeroshot"] = r["value"]
        elif r["arm"] == "worth":
            c["worth"] = r["value"]
    for c in out.values():
        ks = sorted(c["probe"])
        c["shots"] = ks
        c["mean"] = [float(np.mean(c["probe"][k])) for k in ks]
        c["lo"] = [float(np.min(c["probe"][k])) for k in ks]
        c["hi"] = [float(np.max(c["probe"][k])) for k in ks]
    return out


def summary(rows: list[dict]) -> str:
    """A Markdown table: per task chance, zero-shot and each k-shot probe in % (mean [min..max] over seeds) and the
    shots zero-shot is worth; then the paper's finding."""
    tasks = curves(rows)
    ks = sorted({k for c in tasks.values() for k in c["shots"]})
    head = "| task | chance | zero-shot | " + " | ".join(f"{k}-shot" for k in ks) + " | zero-shot worth (shots) |"
    lines = [head, "|" + "---|" * (len(ks) + 4)]
    for task, c in tasks.items():
        cells = []
        for k in ks:
            i = c["shots"].index(k) if k in c["shots"] else None
            cells.append(
                "-" if i is None else f"{100 * c['mean'][i]:.1f} [{100 * c['lo'][i]:.1f}..{100 * c['hi'][i]:.1f}]"
            )
        worth = format_worth(c.get("worth", math.nan), c["shots"] or [1])
        zs = c.get("zeroshot", math.nan)
        lines.append(f"| {task} | {100 * c['chance']:.1f} | {100 * zs:.1f} | {' | '.join(cells)} | {worth} |")
    note = "Probe cells: mean top-1 (%) over seeds [min..max]; worth: log2-linear interpolation of the mean curve."
    return "\n".join(lines) + f"\n\n{note}\n\n{FINDING}\n"


def plot_fewshot(rows: list[dict], path: str) -> None:
    """One panel per task: probe top-1 vs shots (log2 axis; mean, min..max over seeds), zero-shot and chance as
    horizontal lines, the shots zero-shot is worth in the title."""
    plt = pyplot()

    tasks = curves(rows)
    cols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.6 * nrows), dpi=100, squeeze=False)
    for ax in axes.flat[len(tasks) :]:
        ax.axis("off")
    for ax, (task, c) in zip(axes.flat, tasks.items()):
        mean = np.array(c["mean"]) * 100
        err = [mean - np.array(c["lo"]) * 100, np.array(c["hi"]) * 100 - mean]
        ax.errorbar(c["shots"], mean, yerr=err, marker="o", capsize=3, label="linear probe (min..max over seeds)")
        ax.axhline(100 * c["zeroshot"], color="tab:red", lw=1.5, label="zero-shot")
        ax.axhline(100 * c["chance"], color="black", ls=":", lw=1, label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xticks(c["shots"], [str(k) for k in c["shots"]])
        ax.set_title(f"{task}: zero-shot worth {format_worth(c.get('worth', math.nan), c['shots'])} shots", fontsize=10)
        ax.set_xlabel("labelled images per class")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Zero-shot vs few-shot linear probes (paper: Figure 6)")
    save_figure(fig, path)
