"""Training objectives (the paper's Figure 2): the same image encoder trained on the same data with the contrastive
objective, with bag-of-words prediction and with a captioning transformer language model; its balanced zero-shot
top-1 (mean per-class recall; each objective scored its own way, see eval/zeroshot.py), measured at checkpoints along
training, against images seen. Balanced, because the demo's tasks are imbalanced and a generative scorer that prefers
one class name for every image would otherwise score that class's share of the test set."""

from __future__ import annotations

import math
from collections import defaultdict

from eval.studies import MEAN, pyplot, row, save_figure, standard_error, zeroshot_rows

STUDY = "objectives"
ACC = "zeroshot_acc1"  # plain top-1, recorded too
BALANCED = "zeroshot_balanced_acc1"  # mean per-class recall: what the study reads (chance is 1/classes for any guess)
LABELS = {
    "contrastive": "contrastive (CLIP)",
    "bow": "bag-of-words prediction",
    "caption": "transformer language model",
}
FINDING = (
    "Paper (Figure 2): on ImageNet zero-shot, a transformer language model that predicts the caption learns 3x slower "
    "(in images seen) than a bag-of-words prediction baseline, and swapping that predictive objective for a contrastive "
    "one (a bag-of-words text encoder with CLIP's loss) is a further 4x more efficient: 12x in all."
)


def objective_rows(evaluator, arm: str, tasks: list[str], images_seen: int, seed: int) -> list[dict]:
    """One checkpoint's rows at x = images seen: balanced and plain zero-shot top-1 per task, and their means (dataset
    `mean`, n_test the
    summed test images, chance the mean chance)."""
    return zeroshot_rows(
        evaluator, tasks, STUDY, arm, images_seen, seed, {BALANCED: "mean_per_class_recall", ACC: "acc1"}
    )


def fact_rows(arm: str, seed: int, images_seen: int, facts: dict[str, float]) -> list[dict]:
    """A run's facts (train_s, final_loss, ...) as `mean` rows at its last x."""
    return [row(MEAN, STUDY, arm, images_seen, k, v, seed, 0, math.nan) for k, v in facts.items()]


def points(rows: list[dict], dataset: str = MEAN) -> list[dict]:
    """The study's zero-shot rows of one dataset (the task mean by default), by arm order, seed and images seen."""
    order = {a: i for i, a in enumerate(LABELS)}
    found = [r for r in rows if r["task"] == STUDY and r["metric"] == BALANCED and r["dataset"] == dataset]
    return sorted(found, key=lambda r: (order.get(r["arm"], len(order)), r["arm"], r["seed"], r["x"]))


def curves(rows: list[dict], dataset: str = MEAN) -> dict[str, list[tuple[float, float, float, float]]]:
    """arm -> [(images seen, mean accuracy over seeds, error low, error high)]: the error is one binomial standard
    error with one seed, else the min..max over seeds."""
    by_arm: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in points(rows, dataset):
        by_arm[r["arm"]][r["x"]].append(r)
    out = {}
    for arm, by_x in by_arm.items():
        line = []
        for x, found in sorted(by_x.items()):
            values = [r["value"] for r in found]
            mean = sum(values) / len(values)
            if len(values) == 1:
                se = standard_error(mean, found[0]["n_test"])
                line.append((x, mean, se, se))
            else:
                line.append((x, mean, mean - min(values), max(values) - mean))
        out[arm] = line
    return out


def images_to_reach(line: list[tuple[float, float, float, float]], target: float) -> float | None:
    """The images seen at which a curve first reaches `target` accuracy (linear between checkpoints; the first
    checkpoint when it is already there, since nothing was measured before it), or None."""
    previous = None
    for x, acc, _, _ in line:
        if acc >= target:
            if previous is None or acc == previous[1]:
                return x
            px, pacc = previous
            return px + (x - px) * (target - pacc) / (acc - pacc)
        previous = (x, acc)
    return None


def reading(rows: list[dict]) -> str:
    """An honest reading from the task-mean curves: distance from chance at the end first, then the ranking and
    whether its gaps exceed two standard errors, then images-seen efficiency where both curves are above chance."""
    lines = curves(rows)
    if not lines:
        return "No points were measured."
    last = {arm: line[-1] for arm, line in lines.items()}
    chance = {r["arm"]: r["chance"] for r in points(rows)}
    n_test = {r["arm"]: r["n_test"] for r in points(rows)}
    above = [a for a, (_, acc, low, _) in last.items() if acc - chance[a] > 2 * max(low, 1e-12)]
    ranked = sorted(last, key=lambda a: -last[a][1])
    parts = [
        "Final mean balanced zero-shot top-1: "
        + ", ".join(f"{LABELS.get(a, a)} {100 * last[a][1]:.1f}%" for a in ranked)
        + f" (chance {100 * chance[ranked[0]]:.1f}%)."
    ]
    if not above:
        parts.append(
            "No objective is more than two standard errors above chance, so the curves differ by noise: train on a "
            "larger corpus or for more epochs before reading the order."
        )
        return " ".join(parts)
    parts.append(
        f"{len(above)} of {len(last)} objective(s) end more than two standard errors above chance "
        f"({', '.join(LABELS.get(a, a) for a in above)})."
    )
    best, rest = ranked[0], ranked[1:]
    for other in rest:
        gap = last[best][1] - last[other][1]
        se = math.hypot(
            standard_error(last[best][1], n_test[best]),
            standard_error(last[other][1], n_test[other]),
        )
        verdict = "more than" if gap > 2 * se else "within"
        parts.append(
            f"{LABELS.get(best, best)} leads {LABELS.get(other, other)} by {100 * gap:.1f} points, {verdict} two "
            "standard errors of the difference."
        )
        if other in above and gap > 2 * se:
            target = last[other][1]
            reach = images_to_reach(lines[best], target)
            if reach and lines[best][0][1] > target:  # already past it at the first checkpoint: a bound only
                parts.append(
                    f"It is past {LABELS.get(other, other)}'s final accuracy at its first checkpoint ({reach:,.0f} "
                    f"images), at least {last[other][0] / reach:.1f}x fewer."
                )
            elif reach:
                parts.append(
                    f"It reaches {LABELS.get(other, other)}'s final accuracy after {reach:,.0f} images, "
                    f"{last[other][0] / reach:.1f}x fewer."
                )
    parts.append(
        "At demo scale read the order and whether it holds at every checkpoint, not the paper's 3x and 4x factors."
    )
    return " ".join(parts)


def summary(rows: list[dict]) -> str:
    """Markdown: per objective and checkpoint the images seen and the task-mean accuracy; per task the final point;
    the paper's finding and a reading generated from the points."""
    lines = ["| objective | seed | images seen | mean balanced zero-shot top-1 | chance |", "|---|---|---|---|---|"]
    for r in points(rows):
        se = standard_error(r["value"], r["n_test"])
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['x']:,.0f} | {100 * r['value']:.1f} ± {100 * se:.1f} | "
            f"{100 * r['chance']:.1f} |"
        )
    tasks = sorted({r["dataset"] for r in rows if r["task"] == STUDY and r["metric"] == BALANCED} - {MEAN})
    final: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for task in tasks:
        for r in points(rows, task):
            key = (r["arm"], r["seed"])
            if task not in final[key] or r["x"] > final[key][task]["x"]:
                final[key][task] = r
    table = ["| objective | seed | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    for (arm, seed), per_task in final.items():
        cells = [f"{100 * per_task[t]['value']:.1f}" if t in per_task else "-" for t in tasks]
        table.append(f"| {arm} | {seed} | " + " | ".join(cells) + " |")
    note = (
        "Balanced zero-shot top-1 (mean per-class recall) in % ± one binomial standard error over all test images: "
        "a model that answers one class for every image scores exactly chance here, while its plain top-1 "
        "(metric zeroshot_acc1 in results.parquet) is that class's share of the test set. Contrastive: prompt embeddings "
        "against image embeddings; bag-of-words: the prompt's bag-of-words score; caption: the prompt's "
        "log-likelihood given the image; each averaged over the task's templates."
    )
    return (
        "\n".join(lines)
        + "\n\nAt the last checkpoint, per task:\n\n"
        + "\n".join(table)
        + f"\n\n{note}\n\n{FINDING}\n\nReading: {reading(rows)}\n"
    )


def plot_objectives(rows: list[dict], path: str) -> None:
    """Task-mean balanced zero-shot top-1 against images seen, one line per objective with error bars, chance dashed: the
    shape of the paper's Figure 2."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=100)
    for i, (arm, line) in enumerate(curves(rows).items()):
        xs = [p[0] for p in line]
        ys = [100 * p[1] for p in line]
        errs = [[100 * p[2] for p in line], [100 * p[3] for p in line]]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=f"C{i}", label=LABELS.get(arm, arm))
    mean = points(rows)
    if mean:
        ax.axhline(100 * mean[0]["chance"], color="grey", ls="--", lw=1, label="chance")
    ax.set_xlabel("images seen")
    ax.set_ylabel("balanced zero-shot top-1 (%, mean over tasks)")
    ax.set_title("Training objectives (paper: Figure 2)")
    ax.legend(fontsize=9)
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)
