"""DuckDB views over the Parquet files of an output folder, so `wit sql OUT "SELECT ..."` can name tables.

TABLES maps a view name to the globs (relative to the folder) that hold its rows and the columns it must have.
A folder gets a view for every table it holds; a single .parquet file is exposed under its stem.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import duckdb
import pyarrow.parquet as pq

from wit_builder.errors import WitError


@dataclass(frozen=True)
class Table:
    name: str
    globs: tuple[str, ...]
    required: tuple[str, ...] = ()
    doc: str = ""


TABLES: tuple[Table, ...] = (
    Table("pool", ("pool.parquet", "pool/*.parquet"), ("uid", "url", "text"), "candidate (url, text) pairs"),
    Table("queries", ("queries.parquet",), ("query",), "the query list"),
    Table("accounting", ("accounting/*.parquet",), ("uid", "status", "reason"),
          "one row per pool row: kept, or filtered/failed with a reason (wit build)"),
    Table("curated", ("curated/*.parquet",), ("uid", "url", "text"), "the pairs selected for download (wit build)"),
    Table("samples", ("shards/*.parquet",), ("uid", "key", "status"),
          "one row per attempted download: status, error_message, sizes, sha256 (wit build)"),
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
        for pattern in table.globs:
            files = globber(f"{root}/{pattern}")
            if files:
                found[table.name] = files
                break
    return found


def _check_columns(name: str, files: list[str], filesystem=None) -> None:
    """Fail with a readable message when a file is not Parquet or lacks a column the view promises."""
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
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{listing}], union_by_name=true)')
    return con, tables
