"""Prompt engineering and ensembling (the paper's Figure 4): zero-shot top-1 of the same model on each task with the
bare class name, with the single prompt "a photo of a {c}.", and with the paper's 80-template ImageNet ensemble."""

from __future__ import annotations

from eval.studies import pyplot, row, save_figure, standard_error
from eval.templates import IMAGENET, NAME, ONE

STUDY = "prompts"
ARMS = {"name": NAME, "one": ONE, "ensemble": IMAGENET}  # arm -> templates; x is the number of templates
LABELS = {"name": "class name", "one": '"a photo of a {c}."', "ensemble": "80-prompt ensemble"}
FINDING = (
    "Paper (Figure 4): over contextless class names, prompt engineering and ensembling add almost 5 points of zero-shot "
    "accuracy (on ImageNet, and on average over 36 datasets), a gain like that of 4x more compute."
)


def prompt_rows(evaluator, tasks: list[str]) -> list[dict]:
    """Zero-shot top-1 per task and arm (seed 0: nothing here is random); the ensemble arm is exactly
    `evaluator.zeroshot(task, templates=IMAGENET)`."""
    rows = []
    for task in tasks:
        feats = evaluator.features(task, "test")
        chance = 1 / len(feats.data.classnames or [None])
        for arm, templates in ARMS.items():
            acc1 = evaluator.zeroshot(task, templates=list(templates)).record["metrics"]["acc1"]
            rows.append(row(task, STUDY, arm, len(templates), "acc1", acc1, 0, len(feats.x), chance))
    return rows


def by_task(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> arm -> its row (the prompts study's rows only)."""
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["task"] == STUDY:
            out.setdefault(r["dataset"], {})[r["arm"]] = r
    return out


def summary(rows: list[dict]) -> str:
    """A Markdown table: per task the three arms in % (± one binomial standard error), the ensemble's gain over the
    class name, and chance; then the paper's finding."""
    head = "| task | test images | chance | class name | one prompt | ensemble | ensemble - name |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for task, arms in by_task(rows).items():
        first = next(iter(arms.values()))
        cells = [_pct(arms[a]) if a in arms else "-" for a in ARMS]
        gain = 100 * (arms["ensemble"]["value"] - arms["name"]["value"]) if {"ensemble", "name"} <= set(arms) else None
        gain_cell = f"{gain:+.1f}" if gain is not None else "-"
        lines.append(
            f"| {task} | {first['n_test']} | {100 * first['chance']:.1f} | {' | '.join(cells)} | {gain_cell} |"
        )
    return "\n".join(lines) + "\n\nValues: zero-shot top-1 (%) ± one binomial standard error.\n\n" + FINDING + "\n"


def _pct(r: dict) -> str:
    return f"{100 * r['value']:.1f} ± {100 * standard_error(r['value'], r['n_test']):.1f}"


def plot_prompts(rows: list[dict], path: str) -> None:
    """Grouped bars per task (class name / one prompt / ensemble) with ± one standard error and chance marked."""
    plt = pyplot()
    import numpy as np

    tasks = by_task(rows)
    names = list(tasks)
    width = 0.8 / len(ARMS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(names) + 2), 4.8), dpi=100)
    for i, arm in enumerate(ARMS):
        xs = np.arange(len(names)) + (i - (len(ARMS) - 1) / 2) * width
        vals = [100 * tasks[t][arm]["value"] for t in names]
        errs = [100 * standard_error(tasks[t][arm]["value"], tasks[t][arm]["n_test"]) for t in names]
        ax.bar(xs, vals, width, yerr=errs, capsize=3, label=LABELS[arm])
    for j, t in enumerate(names):
        chance = 100 * next(iter(tasks[t].values()))["chance"]
        ax.hlines(
            chance, j - 0.45, j + 0.45, colors="black", linestyles="--", lw=1.2, label="chance" if j == 0 else None
        )
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("zero-shot top-1 accuracy (%)")
    ax.set_title("Prompt engineering and ensembling (paper: Figure 4)")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)
