"""Accounting from img2dataset's shard Parquet: kept/failed mapping, and the exactly-once check."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.download.status import OUTCOME_SCHEMA, assert_accounted, error_group_sql, read_status
from wit_builder.errors import WitError


def write_shard(folder, name, rows):
    keys = ["uid", "key", "status", "error_message", "width", "height", "sha256"]
    table = pa.table(
        {k: [r[i] for r in rows] for i, k in enumerate(keys)},
        schema=pa.schema(
            [
                ("uid", pa.string()),
                ("key", pa.string()),
                ("status", pa.string()),
                ("error_message", pa.string()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("sha256", pa.string()),
            ]
        ),
    )
    pq.write_table(table, folder / f"{name}.parquet")


def test_read_status_maps_and_orders(tmp_path):
    write_shard(
        tmp_path, "00001", [("c", "000010001", "failed_to_resize", "image area too large (1 x 1)", None, None, None)]
    )
    write_shard(
        tmp_path,
        "00000",
        [
            ("b", "000000001", "failed_to_download", "HTTP Error 404: Not Found", None, None, None),
            ("a", "000000000", "success", None, 256, 300, "ab"),
        ],
    )
    (tmp_path / "notashard.parquet").write_bytes(b"ignored")  # only NNNNN.parquet files are shards
    table = read_status(str(tmp_path))
    assert table.schema == OUTCOME_SCHEMA
    assert [(r["uid"], r["status"], r["error"], r["stage"], r["shard"], r["key"]) for r in table.to_pylist()] == [
        ("a", "kept", None, "success", "00000.tar", "000000000"),
        ("b", "failed", "HTTP Error 404: Not Found", "failed_to_download", "00000.tar", "000000001"),
        ("c", "failed", "image area too large (1 x 1)", "failed_to_resize", "00001.tar", "000010001"),
    ]
    assert_accounted(["a", "b", "c"], table)
    with pytest.raises(WitError, match=r"missing 1 \(d\), unexpected 0 \(\), repeated 0"):
        assert_accounted(["a", "b", "c", "d"], table)
    with pytest.raises(WitError, match=r"missing 0 \(\), unexpected 1 \(c\), repeated 0"):
        assert_accounted(["a", "b"], table)
    with pytest.raises(WitError, match=r"repeated 1 \(a\)"):
        assert_accounted(["a", "b", "c"], pa.concat_tables([table, table.slice(0, 1)]))


def test_empty_folder_gives_empty_accounting(tmp_path):
    assert read_status(str(tmp_path / "none")).num_rows == 0


def test_error_groups_drop_per_pair_details():
    import duckdb

    errors = [
        "image area too large (7000 x 7000)",
        "image area too large (8000 x 6000)",
        "image area too large (900000000 px)",
        "redirect to http://10.0.0.1/x.png refused: 10.0.0.1 is a private address",
        "redirect to http://10.0.0.2/y refused: 10.0.0.2 is a private address",
        "HTTP Error 404: Not Found",
        "<urlopen error [Errno 111] Connection refused>",
    ]
    rows = duckdb.sql(
        f"SELECT {error_group_sql('e')} AS g, count(*) FROM (SELECT unnest(?) AS e) GROUP BY g ORDER BY g",
        params=[errors],
    ).fetchall()
    assert rows == [
        ("<urlopen error [Errno 111] Connection refused>", 1),
        ("HTTP Error 404: Not Found", 1),
        ("image area too large (N px)", 1),
        ("image area too large (W x H)", 2),
        ("redirect to URL refused: ADDRESS is a private address", 2),
    ]


def test_reason_column_names_deadline_misses(tmp_path):
    from wit_builder.download.status import DEADLINE, DOWNLOAD_FAILED

    write_shard(
        tmp_path,
        "00000",
        [
            ("a", "000000000", "success", None, 256, 300, "ab"),
            (
                "b",
                "000000001",
                "failed_to_download",
                "deadline exceeded: no complete response within 30 s",
                None,
                None,
                None,
            ),
            ("c", "000000002", "failed_to_download", "timed out", None, None, None),
            ("d", "000000003", "failed_to_resize", "image area too large (1 x 1)", None, None, None),
        ],
    )
    reasons = [(r["uid"], r["reason"]) for r in read_status(str(tmp_path)).to_pylist()]
    assert reasons == [("a", None), ("b", DEADLINE), ("c", DOWNLOAD_FAILED), ("d", DOWNLOAD_FAILED)]
    assert (DEADLINE, DOWNLOAD_FAILED) == ("deadline", "download_failed")
