"""Every pool row's fate: kept, filtered with a reason, or failed; and the invariant that each row is accounted once.

While curating, a row carries `reason` = null as long as it is alive; the first stage that drops it writes its reason
and later stages leave it alone. At the end `status` is `kept` (before download: selected for download) or `filtered`.
The download stage adds `failed` with the downloader's error.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.errors import WitError

KEPT, FILTERED, FAILED = "kept", "filtered", "failed"

# reason -> what it means; the order is the order of the stages that assign them
REASONS: dict[str, str] = {
    "invalid_row": "the input line could not be parsed (bad JSON)",
    "invalid_utf8": "url or text is not valid UTF-8",
    "missing_url": "url is null or blank",
    "empty_text": "text is null, or empty after normalisation",
    "language": "language not in --languages, or its score below --lang-threshold",
    "no_match": "the text contains no query",
    "duplicate": "same url and text as the row chosen for that url",
    "duplicate_url": "same url as another row with a different text (one pair per url)",
    "cap": "balancing dropped it (paper: its attributed query was full; metaclip: not sampled)",
}

ACCOUNTING_SCHEMA = pa.schema([
    pa.field("uid", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
])


def drop(reason_col: pa.Array | pa.ChunkedArray, mask, reason: str) -> pa.Array:
    """Set `reason` where `mask` is true and the row is still alive (null reason); earlier reasons win."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    alive = pc.is_null(reason_col)
    hit = pc.and_(alive, pa.array(mask, pa.bool_()) if not isinstance(mask, (pa.Array, pa.ChunkedArray)) else mask)
    return pc.if_else(hit, pa.scalar(reason, pa.string()), reason_col)


def alive_mask(table: pa.Table):
    return pc.is_null(table["reason"])


def status_of(reason_col) -> pa.Array:
    return pc.if_else(pc.is_null(reason_col), pa.scalar(KEPT), pa.scalar(FILTERED))


def count_reasons(reason_col) -> dict[str, int]:
    """{reason: rows} plus 'kept' for the null reasons, from one column (a Table column or array)."""
    counts = Counter()
    for row in pc.value_counts(reason_col).to_pylist():
        counts[row["values"] if row["values"] is not None else KEPT] += row["counts"]
    return dict(counts)


def funnel(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """pool -> normalised -> language -> matched -> deduplicated -> kept, from the reason counts."""
    total = sum(reasons.values())
    steps = [("pool", ())]
    steps += [("normalised", ("invalid_row", "invalid_utf8", "missing_url", "empty_text")),
              ("language", ("language",)), ("matched", ("no_match",)),
              ("deduplicated", ("duplicate", "duplicate_url")), ("kept", ("cap",))]
    out, left = [], total
    for name, dropped in steps:
        left -= sum(reasons.get(r, 0) for r in dropped)
        out.append((name, left))
    return out


def assert_accounted(rows_in: int, accounting: pa.Table) -> None:
    """Rows in == rows accounted, each uid exactly once, every row with a status and a known reason."""
    n = accounting.num_rows
    if n != rows_in:
        raise WitError(f"accounting lost rows: {rows_in:,} pool rows in, {n:,} accounted")
    uids = accounting["uid"]
    if pc.count_distinct(uids).as_py() != n or uids.null_count:
        raise WitError("accounting has a uid twice or a null uid: pool uids must be unique (check the uid column)")
    statuses = set(pc.unique(accounting["status"]).to_pylist())
    if not statuses <= {KEPT, FILTERED, FAILED}:
        raise WitError(f"accounting has unknown statuses {sorted(map(str, statuses - {KEPT, FILTERED, FAILED}))}")
    bad = set(pc.unique(accounting["reason"]).to_pylist()) - set(REASONS) - {None}
    if bad and FAILED not in statuses:
        raise WitError(f"accounting has unknown reasons {sorted(bad)}")
