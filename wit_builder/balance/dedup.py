"""Exact deduplication among the rows that survived matching: one pair per URL.

Rule (docs/curation.md): rows with the same url form a group; the row with the smallest seeded hash of its uid wins
(a uniform, reproducible choice). The others are dropped as `duplicate` when their (normalised) text equals the
winner's, else as `duplicate_url` (the same image with another caption: it would be downloaded twice).
The function is correct on any table that holds whole url groups (the whole pool, or one hash partition by url).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.balance import seeded_hash
from wit_builder.ledger import drop


def mark_duplicates(table: pa.Table, seed: int = 0) -> pa.Table:
    alive_idx = np.nonzero(np.asarray(pc.is_null(table["reason"]).to_numpy(zero_copy_only=False), bool))[0]
    if len(alive_idx) < 2:
        return table
    sub = table.take(pa.array(alive_idx))
    h = seeded_hash(sub["uid"], seed, "dedup")
    keyed = pa.table({"url": sub["url"], "h": pa.array(h), "uid": sub["uid"]})
    order = pc.sort_indices(keyed, sort_keys=[("url", "ascending"), ("h", "ascending"), ("uid", "ascending")])
    url = sub["url"].take(order)
    text = sub["text"].take(order)
    n = len(order)
    first = np.ones(n, dtype=bool)
    first[1:] = ~np.asarray(pc.equal(url.slice(1), url.slice(0, n - 1)).to_numpy(zero_copy_only=False), bool)
    if first.all():
        return table
    winner = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    same_text = np.asarray(pc.equal(text, text.take(pa.array(winner))).to_numpy(zero_copy_only=False), bool)
    rows = alive_idx[np.asarray(order)]
    dup = np.zeros(table.num_rows, bool)
    dup_url = np.zeros(table.num_rows, bool)
    dup[rows[~first & same_text]] = True
    dup_url[rows[~first & ~same_text]] = True
    reason = drop(table["reason"], pa.array(dup), "duplicate")
    reason = drop(reason, pa.array(dup_url), "duplicate_url")
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)
