"""Render query results for people (an aligned table) or for programs (CSV, JSON)."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
from collections.abc import Sequence

MAX_CELL = 60


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value).replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _jsonable(value):
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def format_rows(columns: Sequence[str], rows: Sequence[tuple], fmt: str = "table", max_rows: int = 50) -> str:
    """Return the result as text: 'table' (aligned, numbers right-aligned, long cells cut), 'csv' or 'json'."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        return json.dumps([dict(zip(columns, map(_jsonable, r))) for r in rows], ensure_ascii=False) + "\n"
    if not columns:
        return "(no result)\n"
    shown = rows[:max_rows]
    cells = [[_cell(v) for v in row] for row in shown]
    numeric = [
        all(isinstance(r[i], (int, float, decimal.Decimal)) or r[i] is None for r in shown) and shown
        for i in range(len(columns))
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values):
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    lines = [line(columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    total = len(rows)
    if total > len(shown):
        lines.append(f"({total:,} rows; showing {len(shown)}: raise --max-rows or use --format csv)")
    else:
        lines.append(f"({total:,} row{'s' if total != 1 else ''})")
    return "\n".join(lines) + "\n"
