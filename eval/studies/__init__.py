"""The paper's studies at demo scale: training objectives (Figure 2), prompt engineering and ensembling (Figure 4),
zero-shot versus few-shot linear probes (Figure 6) and compute scaling (Figure 9). Each study turns Evaluators into
tidy rows (one per task, arm, x, metric, seed) that `results_table` makes the Parquet `wit sql` reads as `results`,
and draws its PNG."""

from __future__ import annotations

import math

import pyarrow as pa

# Every row: dataset (the evaluation task), task (the study), arm, x, metric, value, seed, n_test, chance.
SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("task", pa.string()),
        ("arm", pa.string()),
        ("x", pa.float64()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("seed", pa.int64()),
        ("n_test", pa.int64()),
        ("chance", pa.float64()),
    ]
)


def row(dataset: str, study: str, arm: str, x: float, metric: str, value: float, seed: int, n_test: int, chance: float):
    """One tidy row in SCHEMA's order."""
    return {
        "dataset": dataset,
        "task": study,
        "arm": arm,
        "x": float(x),
        "metric": metric,
        "value": float(value),
        "seed": int(seed),
        "n_test": int(n_test),
        "chance": float(chance),
    }


def results_table(rows: list[dict]) -> pa.Table:
    """The rows as an Arrow table of SCHEMA."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


MEAN = "mean"  # the `dataset` of a study's rows averaged over the evaluation tasks


def zeroshot_rows(
    evaluator, tasks: list[str], study: str, arm: str, x: float, seed: int, metrics: dict[str, str], error=False
) -> list[dict]:
    """One model's zero-shot rows at `x`: per task and per row metric in `metrics` (row metric -> the zero-shot
    record's metric, e.g. acc1; with `error` its complement), then per metric their mean over the tasks as the `mean`
    row (n_test the summed test images, chance the mean chance). Each task is scored once."""
    rows = []
    for task in tasks:
        feats = evaluator.features(task, "test")
        record = evaluator.zeroshot(task).record["metrics"]
        chance = 1 / len(feats.data.classnames or [None])
        for metric, key in metrics.items():
            value = 1 - record[key] if error else record[key]
            rows.append(row(task, study, arm, x, metric, value, seed, len(feats.x), chance))
    for metric in metrics:
        found = [r for r in rows if r["metric"] == metric and r["dataset"] != MEAN]
        if found:
            mean = sum(r["value"] for r in found) / len(found)
            chance = sum(r["chance"] for r in found) / len(found)
            rows.append(row(MEAN, study, arm, x, metric, mean, seed, sum(r["n_test"] for r in found), chance))
    return rows


def standard_error(p: float, n: int) -> float:
    """The binomial standard error of an accuracy (or error) p measured on n test images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display here or on a cluster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> None:
    """Lay out, write and close a study's figure (closed even when writing fails)."""
    try:
        fig.tight_layout()
        fig.savefig(path)
    finally:
        pyplot().close(fig)
