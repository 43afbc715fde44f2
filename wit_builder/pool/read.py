"""Read a candidate pool (Parquet, CSV/TSV or JSONL, like img2dataset's inputs; local or s3://) into uid/url/text/source.

Every input row becomes one output row, so accounting can start here: a row whose url or text is not valid UTF-8 or
whose JSON line does not parse keeps its place with a `reason`. A pool without a uid column gets uid
"<file name>:<row number>" (stable as long as the file is). Empty files are skipped and logged.
"""

from __future__ import annotations

import glob
import io
import json
import logging
import os
import posixpath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wit_builder import storage
from wit_builder.config import CurateConfig
from wit_builder.errors import WitError
from wit_builder.schema import READ_SCHEMA

log = logging.getLogger(__name__)

FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def pool_format(path: str) -> str:
    for ext, fmt in FORMATS.items():
        if path.lower().endswith(ext):
            return fmt
    raise WitError(f"{path}: unknown pool format; use .parquet, .csv, .tsv or .jsonl (img2dataset's formats)")


def list_pool_files(specs: str | list[str] | tuple[str, ...]) -> list[str]:
    """Expand pool arguments (files, folders, globs; local or s3://) into a sorted list of pool files."""
    specs = [specs] if isinstance(specs, str) else list(specs)
    files: list[str] = []
    for spec in specs:
        fs, path = storage.filesystem(spec)
        prefix = "s3://" if storage.is_s3(spec) else ""
        if any(c in path for c in "*?["):
            found = storage.s3_glob(spec) if prefix else sorted(glob.glob(path))
            files += [f for f in found if _known(f)]
            continue
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise WitError(f"pool {spec} does not exist: give a .parquet/.csv/.tsv/.jsonl file or a folder of them")
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            files += sorted(prefix + f.path for f in found if f.type == pafs.FileType.File and _known(f.path))
        else:
            pool_format(spec)
            files.append(spec if prefix else os.path.abspath(spec))
    if not files:
        raise WitError(f"no pool files (.parquet, .csv, .tsv, .jsonl) under {', '.join(specs)}")
    return sorted(dict.fromkeys(files))


def _known(path: str) -> bool:
    return any(path.lower().endswith(ext) for ext in FORMATS) and not posixpath.basename(path).startswith(".")


def read_pool_file(path: str, cfg: CurateConfig = CurateConfig()) -> pa.Table:
    """One pool file -> a table of READ_SCHEMA (uid, url, text, source, reason), one row per input row."""
    fs, inner = storage.filesystem(path)
    with fs.open_input_file(inner) as handle:
        data = handle.read()
    name = posixpath.basename(inner)
    if not data.strip():
        log.warning("skipping empty pool file %s", path)
        return READ_SCHEMA.empty_table()
    fmt = pool_format(path)
    if fmt == "jsonl":
        return _from_jsonl(data, name, cfg, path)
    if fmt == "parquet":
        try:
            table = pq.read_table(io.BytesIO(data))
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise WitError(f"{path} is not a readable Parquet file ({err})") from err
    else:
        table = _read_csv(data, fmt, cfg, path)
    return _shape(table, name, cfg, path, reason=None)


def _read_csv(data: bytes, fmt: str, cfg: CurateConfig, path: str) -> pa.Table:
    delimiter = "\t" if fmt == "tsv" else ","
    convert = pacsv.ConvertOptions(
        check_utf8=False,
        strings_can_be_null=False,
        column_types={cfg.url_col: pa.binary(), cfg.text_col: pa.binary(), cfg.uid_col: pa.string()},
    )
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=convert,
        )
    except pa.ArrowInvalid as err:
        raise WitError(f"{path} is not a readable {fmt.upper()} file ({err})") from err


def _from_jsonl(data: bytes, name: str, cfg: CurateConfig, path: str) -> pa.Table:
    """Parse line by line so that one bad line becomes one accounted row, not a failed file."""
    rows, reasons = [], []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
            rows.append(row)
            reasons.append(None)
        except UnicodeDecodeError:
            rows.append({})
            reasons.append("invalid_utf8")
        except ValueError:
            rows.append({})
            reasons.append("invalid_row")
    parsed = [r for r, why in zip(rows, reasons) if why is None]
    for col in (cfg.url_col, cfg.text_col):
        if parsed and not any(col in r for r in parsed):
            raise WitError(
                f"{path} has no '{col}' field (fields: {', '.join(sorted(set().union(*map(set, parsed))))}); "
                "pass --url-col / --text-col"
            )

    def column(key):
        return [_as_text(r.get(key)) for r in rows]

    table = pa.table({cfg.url_col: column(cfg.url_col), cfg.text_col: column(cfg.text_col)})
    if any(cfg.uid_col in r for r in parsed):
        table = table.append_column(cfg.uid_col, pa.array(column(cfg.uid_col), pa.string()))
    if any("source" in r for r in parsed):
        table = table.append_column("source", pa.array(column("source"), pa.string()))
    return _shape(table, name, cfg, path, reason=pa.array(reasons, pa.string()))


def _as_text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _shape(table: pa.Table, name: str, cfg: CurateConfig, path: str, reason) -> pa.Table:
    """Pick and rename the configured columns, make uids, and decode url/text (invalid UTF-8 -> a reason)."""
    missing = [c for c in (cfg.url_col, cfg.text_col) if c not in table.column_names]
    if missing:
        raise WitError(
            f"{path} lacks column(s) {', '.join(missing)} (it has: {', '.join(table.column_names)}); "
            "pass --url-col / --text-col"
        )
    n = table.num_rows
    reason = pa.nulls(n, pa.string()) if reason is None else reason
    url, bad_url = _decode(table[cfg.url_col])
    text, bad_text = _decode(table[cfg.text_col])
    bad = pc.or_(bad_url, bad_text)
    reason = pc.if_else(pc.and_(bad, pc.is_null(reason)), pa.scalar("invalid_utf8"), reason)
    if cfg.uid_col in table.column_names:
        uid = table[cfg.uid_col].cast(pa.string())
        if uid.null_count:
            raise WitError(
                f"{path}: column {cfg.uid_col} has {uid.null_count} null uid(s); fill them or drop the column"
            )
    else:
        uid = pa.array([f"{name}:{i}" for i in range(n)], pa.string())
    source = table["source"].cast(pa.string()) if "source" in table.column_names else pa.nulls(n, pa.string())
    return pa.Table.from_arrays([_plain(uid), url, text, _plain(source), _plain(reason)], schema=READ_SCHEMA)


def _plain(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    return col.cast(pa.string())


def _decode(col) -> tuple[pa.Array, pa.Array]:
    """(string column, invalid-UTF-8 mask). The fast path is one validating cast; bad rows are found one by one."""
    col = _plain_any(col)
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), pa.string()), pa.array([False] * len(col))
    if not (
        pa.types.is_binary(col.type)
        or pa.types.is_string(col.type)
        or pa.types.is_large_string(col.type)
        or pa.types.is_large_binary(col.type)
    ):
        return col.cast(pa.string()), pa.array([False] * len(col))
    raw = (
        col.cast(pa.large_binary())
        if pa.types.is_large_string(col.type)
        else col.view(pa.binary())
        if pa.types.is_string(col.type)
        else col
    )
    try:
        return raw.cast(pa.string()), pa.array([False] * len(col))
    except pa.ArrowInvalid:
        values, bad = [], []
        for item in raw.to_pylist():
            try:
                values.append(None if item is None else item.decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                values.append(None)
                bad.append(True)
        return pa.array(values, pa.string()), pa.array(bad)


def _plain_any(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    return col


def read_pool(specs, cfg: CurateConfig = CurateConfig()) -> pa.Table:
    """All pool files in one table (the pure path; the Ray path reads one file per task with read_pool_file)."""
    tables = [read_pool_file(f, cfg) for f in list_pool_files(specs)]
    return pa.concat_tables(tables) if tables else READ_SCHEMA.empty_table()
