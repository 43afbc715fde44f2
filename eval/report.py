"""Results of `wit eval` for people and for SQL: a Markdown table of the headline metrics (one row per dataset and
task, chance level beside it) and a long Parquet table (one row per metric) that `wit sql` reads as `results`."""

from __future__ import annotations

import io
import json
import math
import os

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder import storage

# The headline metric of each task (CLIP_benchmark's names), shown in the Markdown table.
HEADLINE = {
    "zeroshot_classification": ("acc1", "acc5", "mean_per_class_recall"),
    "linear_probe": ("lp_acc1", "lp_acc5", "lp_mean_per_class_recall"),
    "zeroshot_retrieval": ("image_retrieval_recall@1", "text_retrieval_recall@1", "image_retrieval_recall@5"),
}


def results_table(records: list[dict]) -> pa.Table:
    """One row per (dataset, model, task, metric)."""
    rows = [
        {
            "dataset": r["dataset"],
            "model": r["model"],
            "pretrained": r["pretrained"],
            "task": r["task"],
            "metric": name,
            "value": float(value) if value is not None else float("nan"),
        }
        for r in records
        for name, value in r["metrics"].items()
    ]
    schema = pa.schema(
        [
            ("dataset", pa.string()),
            ("model", pa.string()),
            ("pretrained", pa.string()),
            ("task", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}" if abs(value) <= 1 else f"{value:.3g}"


def markdown_table(records: list[dict], chance: dict[str, float] | None = None) -> str:
    """| dataset | task | metric: value ... | chance |: percentages, '-' where a metric does not apply."""
    chance = chance or {}
    lines = ["| dataset | task | results (%) | chance (%) |", "|---|---|---|---|"]
    for r in records:
        keys = HEADLINE.get(r["task"], tuple(r["metrics"])[:6])
        cells = ", ".join(f"{k} {_fmt(r['metrics'].get(k))}" for k in keys if k in r["metrics"])
        lines.append(f"| {r['dataset']} | {r['task']} | {cells} | {_fmt(chance.get(r['dataset']))} |")
    return "\n".join(lines)


def write_results(out: str, records: list[dict], predictions: list[pa.Table], chance: dict | None = None) -> None:
    """`out` (a .json, local or s3://) gets the records (CLIP_benchmark's shape; one object for one record); its
    folder gets results.md, results.parquet and, when there are per-example rows, predictions.parquet."""
    folder = os.path.dirname(out) or "."
    storage.write_bytes(out, (json.dumps(records if len(records) != 1 else records[0], indent=2) + "\n").encode())
    storage.write_bytes(f"{folder}/results.md", (markdown_table(records, chance) + "\n").encode())
    storage.write_bytes(f"{folder}/results.parquet", _parquet(results_table(records)))
    if predictions:
        merged = pa.concat_tables(predictions, promote_options="permissive")
        storage.write_bytes(f"{folder}/predictions.parquet", _parquet(merged))


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
