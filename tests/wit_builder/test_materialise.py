"""materialise.merge: one final row per pool row; idempotent; refuses a download that does not match the curation."""

import pyarrow as pa
import pytest

from wit_builder.errors import WitError
from wit_builder.materialise import curation_view, merge, outcome_counts
from wit_builder.schema import ACCOUNTING_SCHEMA, conform

CURATION = pa.table(
    {
        "uid": ["a", "b", "c", "d", "e"],
        "status": ["selected", "filtered", "selected", "selected", "filtered"],
        "reason": [None, "language", None, None, "cap"],
        "lang": ["en", "de", "en", "en", "en"],
    }
)


def download(uids_status):
    rows = [
        (u, s, None if s == "kept" else "HTTP Error 404: Not Found", "00000.tar" if s else None, f"{i:09d}")
        for i, (u, s) in enumerate(uids_status)
    ]
    return pa.table(
        {
            "uid": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "error": [r[2] for r in rows],
            "reason": [None if r[1] == "kept" else "download_failed" for r in rows],
            "stage": ["success" if r[1] == "kept" else "failed_to_download" for r in rows],
            "shard": [r[3] for r in rows],
            "key": [r[4] for r in rows],
            "width": pa.array([256] * len(rows), pa.int32()),
            "height": pa.array([256] * len(rows), pa.int32()),
            "sha256": ["x"] * len(rows),
        }
    )


def test_merge_gives_one_final_row_per_pool_row():
    final = merge(CURATION, download([("a", "kept"), ("c", "failed"), ("d", "kept")]))
    rows = {r["uid"]: r for r in final.to_pylist()}
    assert final.num_rows == 5 and list(rows) == ["a", "b", "c", "d", "e"]
    assert (rows["a"]["status"], rows["a"]["reason"], rows["a"]["key"]) == ("kept", None, "000000000")
    assert (rows["c"]["status"], rows["c"]["reason"], rows["c"]["error"]) == (
        "failed",
        "download_failed",
        "HTTP Error 404: Not Found",
    )
    assert (rows["b"]["status"], rows["b"]["reason"], rows["b"]["shard"]) == ("filtered", "language", None)
    assert rows["e"]["lang"] == "en"
    assert outcome_counts(final) == {"kept": 2, "filtered": 2, "failed": 1}


def test_a_deadline_keeps_its_own_reason():
    dl = download([("a", "kept"), ("c", "failed"), ("d", "failed")])
    dl = dl.set_column(dl.column_names.index("reason"), "reason", pa.array([None, "deadline", "download_failed"]))
    rows = {r["uid"]: r for r in merge(CURATION, dl).to_pylist()}
    assert (rows["c"]["status"], rows["c"]["reason"]) == ("failed", "deadline")
    assert (rows["d"]["status"], rows["d"]["reason"]) == ("failed", "download_failed")


def test_merge_is_idempotent_and_undoable():
    dl = download([("a", "kept"), ("c", "failed"), ("d", "kept")])
    final = merge(CURATION, dl)
    assert merge(final, dl) == final
    assert curation_view(final).sort_by("uid").select(CURATION.column_names) == conform(
        CURATION, ACCOUNTING_SCHEMA
    ).select(CURATION.column_names)
    again = merge(final, download([("a", "failed"), ("c", "kept"), ("d", "kept")]))
    assert outcome_counts(again) == {"kept": 2, "filtered": 2, "failed": 1}
    assert [r["status"] for r in again.to_pylist()] == ["failed", "filtered", "kept", "kept", "filtered"]


@pytest.mark.parametrize(
    "rows",
    [
        [("a", "kept"), ("c", "kept")],  # a selected pair missing
        [("a", "kept"), ("c", "kept"), ("d", "kept"), ("b", "kept")],  # a filtered pair downloaded
        [("a", "kept"), ("c", "kept"), ("d", "kept"), ("d", "kept")],  # a pair twice
    ],
)
def test_merge_refuses_a_download_of_other_pairs(rows):
    with pytest.raises(WitError, match="does not belong to OUT/curated"):
        merge(CURATION, download(rows))
