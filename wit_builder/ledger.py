"""Every pool row's fate: selected, kept, filtered with a reason, or failed; and the invariant that each row is
accounted exactly once.

While curating, a row carries `reason` = null as long as it is alive; the first stage that drops it writes its reason
and later stages leave it alone. Curation ends each row `selected` (chosen for download) or `filtered`. The download
stage turns a selected row `kept` once its image is in a finished shard, or `failed` with the downloader's error; a
build stopped in between leaves `selected` rows, never a `kept` row without its image.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.errors import WitError

SELECTED, KEPT, FILTERED, FAILED = "selected", "kept", "filtered", "failed"
STATUSES = (SELECTED, KEPT, FILTERED, FAILED)

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
    "deadline": "its download did not complete within --request-deadline (the error says more)",
    "download_failed": "its download failed for another reason (the error says which)",
    "near_duplicate": "`wit dedup --remove` took it out: a near-duplicate of an earlier image of the corpus",
}
# which statuses may carry which reasons (None: no reason)
_FAILURE_REASONS = frozenset({"deadline", "download_failed"})
ALLOWED = {SELECTED: {None}, KEPT: {None}, FAILED: set(_FAILURE_REASONS), FILTERED: set(REASONS) - _FAILURE_REASONS}


def drop(reason_col: pa.Array | pa.ChunkedArray, mask, reason: str) -> pa.Array:
    """Set `reason` where `mask` is true and the row is still alive (null reason); earlier reasons win."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    alive = pc.is_null(reason_col)
    hit = pc.and_(alive, pa.array(mask, pa.bool_()) if not isinstance(mask, (pa.Array, pa.ChunkedArray)) else mask)
    return pc.if_else(hit, pa.scalar(reason, pa.string()), reason_col)


def status_of(reason_col) -> pa.Array:
    """Curation's status: selected for a row still alive, filtered for a row with a reason."""
    return pc.if_else(pc.is_null(reason_col), pa.scalar(SELECTED), pa.scalar(FILTERED))


def count_reasons(reason_col) -> dict[str, int]:
    """{reason: rows} plus 'selected' for the null reasons, from one column (a Table column or array)."""
    counts = Counter()
    for row in pc.value_counts(reason_col).to_pylist():
        counts[row["values"] if row["values"] is not None else SELECTED] += row["counts"]
    return dict(counts)


def funnel(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """pool -> normalised -> language -> matched -> deduplicated -> selected, from curation's reason counts."""
    total = sum(reasons.values())
    steps = [("pool", ())]
    steps += [
        ("normalised", ("invalid_row", "invalid_utf8", "missing_url", "empty_text")),
        ("language", ("language",)),
        ("matched", ("no_match",)),
        ("deduplicated", ("duplicate", "duplicate_url")),
        ("selected", ("cap",)),
    ]
    out, left = [], total
    for name, dropped in steps:
        left -= sum(reasons.get(r, 0) for r in dropped)
        out.append((name, left))
    return out


def assert_accounted(rows_in: int, accounting: pa.Table) -> None:
    """Rows in == rows accounted, each uid exactly once, every row with a known status and a reason that fits it."""
    n = accounting.num_rows
    if n != rows_in:
        raise WitError(f"accounting lost rows: {rows_in:,} pool rows in, {n:,} accounted")
    uids = accounting["uid"]
    if pc.count_distinct(uids).as_py() != n or uids.null_count:
        raise WitError("accounting has a uid twice or a null uid: pool uids must be unique (check the uid column)")
    pairs = pa.table({"s": accounting["status"], "r": accounting["reason"]}).group_by(["s", "r"]).aggregate([])
    for status, reason in zip(pairs["s"].to_pylist(), pairs["r"].to_pylist()):
        if status not in ALLOWED:
            raise WitError(f"accounting has an unknown status {status!r} (known: {', '.join(STATUSES)})")
        if reason not in ALLOWED[status]:
            raise WitError(f"accounting has status {status!r} with reason {reason!r}, which does not fit it")
