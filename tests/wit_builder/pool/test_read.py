"""Reading pools in every accepted format, and bad input: missing columns, non-UTF-8 bytes, empty files, bad lines."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.config import CurateConfig
from wit_builder.errors import WitError
from wit_builder.pool.read import list_pool_files, read_pool, read_pool_file


def test_parquet_with_uid_keeps_it(tmp_path):
    path = tmp_path / "pool.parquet"
    pq.write_table(
        pa.table(
            {
                "uid": ["a", "b"],
                "url": ["http://x/1", "http://x/2"],
                "text": ["one", "two"],
                "source": ["s", "s"],
                "extra": [1, 2],
            }
        ),
        path,
    )
    t = read_pool_file(str(path))
    assert t.column_names == ["uid", "url", "text", "source", "reason"]
    assert t["uid"].to_pylist() == ["a", "b"] and t["reason"].null_count == 2


def test_csv_tsv_jsonl_with_configured_columns_and_generated_uids(tmp_path):
    cfg = CurateConfig(url_col="link", text_col="caption")
    (tmp_path / "a.csv").write_text('link,caption\nhttp://x/1,"a, quoted caption"\nhttp://x/2,second\n')
    (tmp_path / "b.tsv").write_text("link\tcaption\nhttp://x/3\tthird\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"link": "http://x/4", "caption": "fourth"}) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")
    files = list_pool_files(str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.csv", "b.tsv", "c.jsonl"]
    t = read_pool(str(tmp_path), cfg)
    assert t["uid"].to_pylist() == ["a.csv:0", "a.csv:1", "b.tsv:0", "c.jsonl:0"]
    assert t["text"].to_pylist() == ["a, quoted caption", "second", "third", "fourth"]


def test_missing_column_is_a_clear_error(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"url": ["u"], "caption": ["c"]}), path)
    with pytest.raises(WitError, match=r"lacks column\(s\) text .*--text-col"):
        read_pool_file(str(path))


def test_non_utf8_rows_are_kept_with_a_reason(tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(b"url,text\nhttp://x/1,fine\nhttp://x/2,bad \xff\xfe bytes\n")
    t = read_pool_file(str(path))
    assert t.num_rows == 2
    assert t["reason"].to_pylist() == [None, "invalid_utf8"]
    assert t["text"].to_pylist() == ["fine", None]


def test_bad_jsonl_lines_are_accounted(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"url": "http://x/1", "text": "ok"}\n{not json\n{"url": "http://x/3", "text": "caf\xe9"}\n[1]\n')
    t = read_pool_file(str(path))
    assert t["reason"].to_pylist() == [None, "invalid_row", "invalid_utf8", "invalid_row"]
    assert t["uid"].to_pylist() == ["p.jsonl:0", "p.jsonl:1", "p.jsonl:2", "p.jsonl:3"]


def test_empty_file_is_skipped_and_nulls_survive(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    pq.write_table(pa.table({"url": ["http://x/1", None], "text": [None, "t"]}), tmp_path / "n.parquet")
    t = read_pool(str(tmp_path))
    assert t.num_rows == 2 and t["url"].to_pylist() == ["http://x/1", None]


def test_missing_pool_and_null_uids(tmp_path):
    with pytest.raises(WitError, match="does not exist"):
        list_pool_files(str(tmp_path / "nope.parquet"))
    with pytest.raises(WitError, match="no pool files"):
        list_pool_files(str(tmp_path))
    pq.write_table(pa.table({"uid": ["a", None], "url": ["u", "v"], "text": ["t", "t"]}), tmp_path / "u.parquet")
    with pytest.raises(WitError, match="null uid"):
        read_pool_file(str(tmp_path / "u.parquet"))
