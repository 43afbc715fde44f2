"""DuckDB views over the Parquet files of a folder, so `wit sql OUT "SELECT ..."` can name tables.

A run folder of `wit train` has one JSON-lines table, `metrics` (RUN/metrics.jsonl, read with read_json_auto); the
folder of `wit eval --out` has `results` and, with --per-example, `predictions`; a `wit overlap` report has `overlap`
and `text_overlap`.

TABLES maps a view name to where its rows are (relative to the folder) and the columns it must have. A folder gets
a view for every table it holds; a single .parquet file is exposed under its stem. A build folder's `samples` view
reads only finished shards (wit_builder/layout.py), so a folder whose build stopped at any point stays queryable.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from wit_builder import layout
from wit_builder.errors import WitError


@dataclass(frozen=True)
class Table:
    name: str
    globs: tuple[str, ...]
    required: tuple[str, ...] = ()
    doc: str = ""
    finder: Callable[[str], list[str]] | None = None  # root -> files, instead of the globs
    reader: str = "parquet"  # or "json": JSON lines, read with DuckDB's read_json_auto


def _finished_sample_tables(root: str) -> list[str]:
    return layout.BuildFolder(root).sample_tables()


def skipped_note(root: str) -> str | None:
    """What the views leave out of a folder whose download did not finish (for stderr), None when nothing."""
    if root.endswith(".parquet"):
        return None
    folder = layout.BuildFolder(root)
    unfinished = folder.unfinished_shards()
    if not unfinished:
        return None
    shown = ", ".join(unfinished[:5]) + (", ..." if len(unfinished) > 5 else "")
    return (
        f"samples: skipped {len(unfinished)} unfinished shard(s) under {folder.shards} ({shown}): their download "
        "did not finish; rerun the build to finish them"
    )


TABLES: tuple[Table, ...] = (
    Table("pool", ("pool.parquet", "pool/*.parquet"), ("uid", "url", "text"), "candidate (url, text) pairs"),
    Table("queries", ("queries.parquet",), ("query",), "the query list (wit queries)"),
    Table(
        "accounting",
        (f"{layout.ACCOUNTING}/*.parquet",),
        ("uid", "status", "reason"),
        "one row per pool row: selected, kept, or filtered/failed with a reason (wit build)",
    ),
    Table(
        "curated",
        (f"{layout.CURATED}/*.parquet",),
        ("uid", "url", "text"),
        "the pairs selected for download (wit build)",
    ),
    Table(
        "query_counts",
        (layout.QUERY_COUNTS,),
        ("query", "matched", "kept"),
        "per query of the list: matched, attributed and kept pairs (wit build)",
    ),
    Table(
        "samples",
        (f"{layout.SHARDS}/NNNNN.parquet",),
        ("uid", "key", "status"),
        "one row per attempted download of a finished shard: status, error_message, sizes, sha256 (wit build)",
        finder=_finished_sample_tables,
    ),
    Table(
        "duplicates",
        ("dedup/clusters.parquet",),
        ("key", "shard", "cluster", "representative", "tier", "similarity"),
        "one row per sample in a near-duplicate cluster: its representative, linking tier, removed or not (wit dedup)",
    ),
    Table(
        "results",
        ("results.parquet",),
        ("dataset", "task", "metric", "value"),
        "one row per metric of an evaluation: dataset, model, task, metric, value (wit eval)",
    ),
    Table(
        "predictions",
        ("predictions.parquet",),
        ("dataset", "task", "key", "label", "prediction", "correct"),
        "one row per test image of an evaluation run with --per-example (wit eval)",
    ),
    Table(
        "overlap",
        ("overlap.parquet",),
        ("dataset", "id", "nearest_key", "similarity", "is_overlap", "tier"),
        "one row per evaluation image: its nearest training image, similarity and overlap tier (wit overlap)",
    ),
    Table(
        "text_overlap",
        ("text_overlap.parquet",),
        ("dataset", "eval_text", "train_key", "jaccard"),
        "evaluation captions or class prompts found among the training captions (wit overlap)",
    ),
    Table(
        "metrics",
        ("metrics.jsonl",),
        ("step", "loss"),
        "one row per logged training step: loss, lr, logit_scale, samples/s, data-wait fraction (wit train)",
        reader="json",
    ),
)


def find_tables(root: str) -> dict[str, list[str]]:
    """Map view name -> Parquet files for the tables present under `root` (a folder or one .parquet file)."""
    if root.startswith("s3://"):
        from wit_builder.storage import s3_glob

        return _find(root.rstrip("/"), s3_glob)
    if not os.path.exists(root):
        raise WitError(f"{root} does not exist: give a folder written by a wit command, or a .parquet file")
    if os.path.isfile(root):
        if not root.endswith(".parquet"):
            raise WitError(f"{root} is not a .parquet file or a folder of them")
        stem = os.path.basename(root)[: -len(".parquet")]
        return {stem: [root]}
    if not os.access(root, os.R_OK | os.X_OK):
        raise WitError(f"{root} is not readable: check its permissions")
    return _find(root, lambda pattern: sorted(glob.glob(pattern)))


def _find(root: str, globber) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table in TABLES:
        if table.finder is not None:
            files = table.finder(root)
            if files:
                found[table.name] = files
            continue
        for pattern in table.globs:
            files = globber(f"{root}/{pattern}")
            if files:
                found[table.name] = files
                break
    return found


def _reader(name: str) -> str:
    return next((t.reader for t in TABLES if t.name == name), "parquet")


def _check_columns(name: str, files: list[str], filesystem=None) -> None:
    """Fail with a readable message when a file is not Parquet or lacks a column the view promises."""
    if _reader(name) == "json":
        return  # checked by DuckDB when the view is created (connect)
    required = next((t.required for t in TABLES if t.name == name), ())
    for path in files:
        try:
            schema = pq.read_schema(path, filesystem=filesystem)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise WitError(f"{path} is not a readable Parquet file ({err})") from err
        missing = [c for c in required if c not in schema.names]
        if missing:
            raise WitError(
                f"{path} lacks column(s) {', '.join(missing)} that table '{name}' needs "
                f"(it has: {', '.join(schema.names)})"
            )


def connect(root: str) -> tuple[duckdb.DuckDBPyConnection, dict[str, list[str]]]:
    """A DuckDB connection with one view per table found under `root`; raises WitError when there is none."""
    tables = find_tables(root)
    if not tables:
        known = ", ".join(f"{t.name} ({' or '.join(t.globs)})" for t in TABLES)
        raise WitError(f"no tables under {root}: expected one of {known}")
    con = duckdb.connect()
    filesystem = None
    if root.startswith("s3://"):
        from wit_builder.storage import fsspec_s3

        filesystem = fsspec_s3()
        con.register_filesystem(filesystem)
    for name, files in tables.items():
        _check_columns(name, files, filesystem)
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        if _reader(name) == "json":
            _json_view(con, name, files, listing)
            continue
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{listing}], union_by_name=true)')
    return con, tables


# The columns of the JSON-lines tables, for a view over files that hold no line yet.
JSON_COLUMNS = {
    "metrics": {
        "step": "BIGINT",
        "epoch": "BIGINT",
        "samples_seen": "BIGINT",
        "loss": "DOUBLE",
        "lr": "DOUBLE",
        "logit_scale": "DOUBLE",
        "samples_per_s": "DOUBLE",
        "data_wait_fraction": "DOUBLE",
    }
}


def _json_view(con, name: str, files: list[str], listing: str) -> None:
    """A view over JSON-lines files; WitError when they are not JSON lines or lack a column the view promises."""
    required = next((t.required for t in TABLES if t.name == name), ())
    try:
        con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_json_auto([{listing}], format='newline_delimited')")
        columns = [row[0] for row in con.execute(f'DESCRIBE "{name}"').fetchall()]
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0]
        raise WitError(f"{', '.join(files)} is not readable as JSON lines ({first})") from err
    if columns == ["json"] and name in JSON_COLUMNS:  # DuckDB's answer for empty files: a run before its first step
        types = ", ".join(f"'{c}': '{t}'" for c, t in JSON_COLUMNS[name].items())
        con.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_json([{listing}], '
            f"format='newline_delimited', columns={{{types}}})"
        )
        return
    missing = [c for c in required if c not in columns]
    if missing:
        raise WitError(
            f"{files[0]} lacks column(s) {', '.join(missing)} that table '{name}' needs (it has: {', '.join(columns)})"
        )
