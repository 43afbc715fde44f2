"""Final accounting after download: the curation accounting merged with the download's, one row per pool row.

Curation leaves each pool row `selected` (chosen for download) or `filtered` with a reason. The download stage
(wit_builder/download/status.py) gives each selected row `kept` with its shard and key, or `failed` with its reason
(`deadline` or `download_failed`) and the error. `merge` joins the two on uid: filtered rows stay as they are,
selected rows take the download's outcome. `curation_view` undoes a merge, so rerunning the download stage on an
already merged accounting gives the same result (the stage is idempotent).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.download.status import REMOVED
from wit_builder.errors import WitError
from wit_builder.ledger import FAILED, FILTERED, KEPT, SELECTED
from wit_builder.schema import ACCOUNTING_SCHEMA, DOWNLOAD_COLUMNS, conform


def curation_view(accounting: pa.Table) -> pa.Table:
    """The accounting as curation wrote it: download columns null, kept and failed rows back to selected (and rows
    `wit dedup --remove` filtered after the download: they were selected too)."""
    table = conform(accounting, ACCOUNTING_SCHEMA)
    removed = pc.fill_null(pc.equal(table["reason"], REMOVED), False)
    downloaded = pc.or_(pc.is_in(table["status"], pa.array([KEPT, FAILED])), removed)
    status = pc.if_else(downloaded, pa.scalar(SELECTED), table["status"])
    reason = pc.if_else(downloaded, pa.scalar(None, pa.string()), table["reason"])
    table = table.set_column(table.column_names.index("status"), "status", status)
    table = table.set_column(table.column_names.index("reason"), "reason", reason)
    for name in DOWNLOAD_COLUMNS:
        i = table.column_names.index(name)
        table = table.set_column(i, table.schema.field(i), pa.nulls(table.num_rows, table.schema.field(i).type))
    return table


def merge(curation: pa.Table, download: pa.Table) -> pa.Table:
    """One row per pool row: the curation accounting with the download outcome of each selected row.

    Raises WitError when the download accounting does not cover exactly the rows curation selected."""
    curation = curation_view(curation)
    selected = pc.equal(curation["status"], SELECTED)
    selected_uids = set(curation.filter(selected)["uid"].to_pylist())
    got = download["uid"].to_pylist()
    if len(got) != len(set(got)) or set(got) != selected_uids:
        missing, extra = len(selected_uids - set(got)), len(set(got) - selected_uids)
        raise WitError(
            f"the download accounting covers {len(got):,} rows ({missing:,} selected pairs missing, "
            f"{extra:,} unknown): OUT/shards does not belong to OUT/curated; use a new --out"
        )
    outcome = download.select(["uid", "status", "reason", *DOWNLOAD_COLUMNS]).rename_columns(
        ["uid", "download_status", "download_reason", *DOWNLOAD_COLUMNS]
    )
    merged = curation.drop_columns(list(DOWNLOAD_COLUMNS)).join(outcome, "uid", join_type="left outer")
    downloaded = pc.is_valid(merged["download_status"])
    status = pc.if_else(downloaded, merged["download_status"], merged["status"])
    reason = pc.if_else(downloaded, merged["download_reason"], merged["reason"])
    merged = merged.set_column(merged.column_names.index("status"), "status", status)
    merged = merged.set_column(merged.column_names.index("reason"), "reason", reason)
    return conform(merged, ACCOUNTING_SCHEMA).sort_by("uid")


def outcome_counts(accounting: pa.Table) -> dict[str, int]:
    """{kept, filtered, failed} row counts of a merged accounting (plus selected, when a download did not finish)."""
    counts = {KEPT: 0, FILTERED: 0, FAILED: 0}
    for row in pc.value_counts(accounting["status"]).to_pylist():
        counts[row["values"]] = row["counts"]
    return counts
