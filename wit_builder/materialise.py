"""Final accounting after download: the curation accounting merged with the download's, one row per pool row.

Curation leaves each pool row `kept` (selected for download) or `filtered` with a reason. The download stage
(wit_builder/download/status.py) gives each selected row `kept` with its shard and key, or `failed` with the error.
`merge` joins the two on uid: filtered rows stay as they are, selected rows take the download's outcome; failed rows
get reason `download_failed` and the error in `error`. `curation_view` undoes a merge, so rerunning the download stage
on an already merged accounting gives the same result (the stage is idempotent).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.errors import WitError
from wit_builder.ledger import FAILED, FILTERED, KEPT

DOWNLOAD_FAILED = "download_failed"  # the reason of a selected pair whose download failed (its error is in `error`)
DOWNLOAD_COLUMNS = ("error", "stage", "shard", "key", "width", "height", "sha256")


def curation_view(accounting: pa.Table) -> pa.Table:
    """The accounting as curation wrote it: download columns dropped, failed rows back to kept with no reason."""
    table = accounting.select([c for c in accounting.column_names if c not in DOWNLOAD_COLUMNS])
    failed = pc.equal(table["status"], FAILED)
    if not pc.any(failed).as_py():
        return table
    status = pc.if_else(failed, pa.scalar(KEPT), table["status"])
    reason = pc.if_else(failed, pa.scalar(None, pa.string()), table["reason"])
    table = table.set_column(table.column_names.index("status"), "status", status)
    return table.set_column(table.column_names.index("reason"), "reason", reason)


def merge(curation: pa.Table, download: pa.Table) -> pa.Table:
    """One row per pool row: the curation accounting with the download outcome of each kept row.

    Raises WitError when the download accounting does not cover exactly the rows curation kept."""
    curation = curation_view(curation)
    selected = pc.equal(curation["status"], KEPT)
    kept_uids = set(curation.filter(selected)["uid"].to_pylist())
    got = download["uid"].to_pylist()
    if len(got) != len(set(got)) or set(got) != kept_uids:
        missing, extra = len(kept_uids - set(got)), len(set(got) - kept_uids)
        raise WitError(f"the download accounting covers {len(got):,} rows ({missing:,} selected pairs missing, "
                       f"{extra:,} unknown): OUT/shards does not belong to OUT/curated; use a new --out")
    outcome = download.select(["uid", "status", *DOWNLOAD_COLUMNS]).rename_columns(
        ["uid", "download_status", *DOWNLOAD_COLUMNS])
    merged = curation.join(outcome, "uid", join_type="left outer")
    failed = pc.equal(pc.fill_null(merged["download_status"], ""), FAILED)
    status = pc.if_else(failed, pa.scalar(FAILED), merged["status"])
    reason = pc.if_else(failed, pa.scalar(DOWNLOAD_FAILED), merged["reason"])
    merged = merged.set_column(merged.column_names.index("status"), "status", status)
    merged = merged.set_column(merged.column_names.index("reason"), "reason", reason)
    merged = merged.drop_columns(["download_status"])
    return merged.sort_by("uid")


def outcome_counts(accounting: pa.Table) -> dict[str, int]:
    """{kept, filtered, failed} row counts of a (merged) accounting."""
    counts = {KEPT: 0, FILTERED: 0, FAILED: 0}
    for row in pc.value_counts(accounting["status"]).to_pylist():
        counts[row["values"]] = row["counts"]
    return counts
