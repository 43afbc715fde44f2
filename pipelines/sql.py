"""Query the Parquet files of a wit folder with DuckDB. Views: pool, and whatever tables the folder holds.

Examples:
  wit sql OUT "SELECT source, count(*) FROM pool GROUP BY 1 ORDER BY 2 DESC"
  wit sql OUT "SELECT * FROM pool WHERE text = ''" --format csv > empty.csv
  wit sql OUT --tables
"""

from __future__ import annotations

import argparse
import sys

HELP = "query a wit folder's Parquet files with DuckDB SQL (views: pool, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a folder written by a wit command (local or s3://), or one .parquet file")
    parser.add_argument("query", nargs="?", help='SQL, e.g. "SELECT count(*) FROM pool"')
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="table (readable, default), csv or json (one JSON array; machine-readable)",
    )
    parser.add_argument(
        "--max-rows", type=int, default=50, help="rows shown by --format table (default 50; csv/json print all)"
    )
    parser.add_argument("--tables", action="store_true", help="list the views found under PATH and their row counts")


def run(args: argparse.Namespace) -> int:
    import duckdb

    from wit_builder import catalog
    from wit_builder.errors import WitError
    from wit_builder.sql_format import format_rows

    con, tables = catalog.connect(args.path)
    note = catalog.skipped_note(args.path)
    if note:
        print(f"wit: {note}", file=sys.stderr)
    if args.tables or not args.query:
        query = " UNION ALL ".join(f"SELECT '{name}' AS view, count(*) AS rows FROM \"{name}\"" for name in tables)
    else:
        query = args.query
    try:
        cursor = con.execute(query)
    except duckdb.Error as err:
        first = str(err).strip().splitlines()[0]
        raise WitError(f"SQL error: {first} (views here: {', '.join(sorted(tables))})") from err
    columns = [d[0] for d in cursor.description] if cursor.description else []
    rows = cursor.fetchall() if columns else []
    sys.stdout.write(format_rows(columns, rows, args.format, max_rows=args.max_rows))
    return 0
