"""`wit sql` over real Parquet files with real DuckDB: views, formats, and the bad-input messages."""

import csv
import io
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def wit_sql(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "sql", *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture
def folder(tmp_path):
    pool = pa.table(
        {
            "uid": [f"u{i}" for i in range(120)],
            "url": [f"http://127.0.0.1:9/img/{i % 40}.png" for i in range(120)],
            "text": ["a dog, running" if i % 3 == 0 else "" if i % 3 == 1 else "ünïcode ✓ text" for i in range(120)],
            "source": ["a" if i < 100 else "b" for i in range(120)],
        }
    )
    pq.write_table(pool, tmp_path / "pool.parquet")
    return tmp_path


def test_table_format_is_aligned_and_counts_rows(folder):
    done = wit_sql(folder, "SELECT source, count(*) AS n FROM pool GROUP BY 1 ORDER BY 1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["source    n", "------  ---", "a       100", "b        20", "(2 rows)"]


def test_csv_and_json_round_trip_exact_values(folder):
    done = wit_sql(folder, "SELECT uid, text FROM pool WHERE uid IN ('u2', 'u3') ORDER BY uid", "--format", "csv")
    assert list(csv.reader(io.StringIO(done.stdout))) == [
        ["uid", "text"],
        ["u2", "ünïcode ✓ text"],
        ["u3", "a dog, running"],
    ]
    done = wit_sql(folder, "SELECT count(*) AS n, count(DISTINCT url) AS urls FROM pool", "--format", "json")
    assert json.loads(done.stdout) == [{"n": 120, "urls": 40}]


def test_table_output_is_truncated_with_a_note(folder):
    done = wit_sql(folder, "SELECT uid FROM pool", "--max-rows", "5")
    lines = done.stdout.splitlines()
    assert len(lines) == 2 + 5 + 1 and lines[-1].startswith("(120 rows; showing 5")


def test_tables_lists_views(folder):
    done = wit_sql(folder, "--tables", "--format", "json")
    assert json.loads(done.stdout) == [{"view": "pool", "rows": 120}]


def test_a_single_parquet_file_is_a_view_named_by_its_stem(folder):
    done = wit_sql(folder / "pool.parquet", "SELECT count(*) AS n FROM pool", "--format", "json")
    assert json.loads(done.stdout) == [{"n": 120}]


def test_sql_error_is_one_clear_line(folder):
    done = wit_sql(folder, "SELECT nosuchcolumn FROM pool")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("wit: error: SQL error:") and "nosuchcolumn" in line and "views here: pool" in line


def test_missing_column_names_the_file_and_the_column(tmp_path):
    pq.write_table(pa.table({"uid": ["a"], "url": ["http://x/"]}), tmp_path / "pool.parquet")
    done = wit_sql(tmp_path, "SELECT 1")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "lacks column(s) text" in line and "pool.parquet" in line


def test_not_parquet_and_empty_folder(tmp_path):
    (tmp_path / "pool.parquet").write_bytes(b"this is not parquet")
    done = wit_sql(tmp_path, "SELECT 1")
    assert done.returncode == 2 and "is not a readable Parquet file" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = wit_sql(empty, "SELECT 1")
    assert done.returncode == 2 and "no tables under" in done.stderr
