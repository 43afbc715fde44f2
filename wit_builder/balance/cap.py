"""The paper's balancing: "at most 20,000 pairs per query" as a hard cap, reproducible for any partitioning.

1. Attribution: a pair that matches several queries is attributed to exactly one, the rarest of them (smallest
   global match count; ties -> the smallest query id). Rare queries are the ones the cap protects, so a pair counts
   against the query for which it is most valuable.
2. Cap: among the pairs attributed to a query, the `cap` pairs with the smallest seeded hash of their uid are kept;
   the rest are dropped with reason `cap`. No query ever has more than `cap` pairs attributed to it. (A pair that
   lost its place is not re-attributed to another of its queries: one pass, documented in docs/curation.md.)
`apply_cap` is correct on any table that holds whole attribution groups (the whole set, or a hash partition).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.balance import seeded_hash
from wit_builder.ledger import drop


def attribute(query_ids, counts: np.ndarray, alive=None) -> np.ndarray:
    """The rarest matched query of each row (int32; -1 for rows without matches or not alive)."""
    if isinstance(query_ids, pa.ChunkedArray):
        query_ids = query_ids.combine_chunks() if query_ids.num_chunks else pa.array([], pa.list_(pa.int32()))
    n = len(query_ids)
    out = np.full(n, -1, dtype=np.int32)
    lengths = np.asarray(pc.list_value_length(query_ids).fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    flat = np.asarray(pc.list_flatten(query_ids).to_numpy(zero_copy_only=False), np.int64)
    if not len(flat):
        return out
    key = counts[flat].astype(np.int64) * (len(counts) + 1) + flat
    has = lengths > 0
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[has]
    out[has] = (np.minimum.reduceat(key, starts) % (len(counts) + 1)).astype(np.int32)
    if alive is not None:
        out[~np.asarray(alive, bool)] = -1
    return out


def add_attribution(table: pa.Table, counts: np.ndarray) -> pa.Table:
    alive = np.asarray(pc.is_null(table["reason"]).to_numpy(zero_copy_only=False), bool)
    return table.append_column("attributed", pa.array(attribute(table["query_ids"], counts, alive), pa.int32()))


def apply_cap(table: pa.Table, cap: int, seed: int = 0) -> pa.Table:
    """Drop (reason `cap`) the alive rows beyond the first `cap` by seeded hash within each attributed query."""
    attributed = np.asarray(table["attributed"].to_numpy(), np.int64)
    alive = np.asarray(pc.is_null(table["reason"]).to_numpy(zero_copy_only=False), bool) & (attributed >= 0)
    idx = np.nonzero(alive)[0]
    if len(idx) <= cap:
        return table
    sub = table.take(pa.array(idx))
    keyed = pa.table({"q": sub["attributed"], "h": pa.array(seeded_hash(sub["uid"], seed, "cap")), "uid": sub["uid"]})
    order = np.asarray(pc.sort_indices(keyed, sort_keys=[("q", "ascending"), ("h", "ascending"), ("uid", "ascending")]))
    q = attributed[idx][order]
    start = np.ones(len(q), bool)
    start[1:] = q[1:] != q[:-1]
    group_start = np.maximum.accumulate(np.where(start, np.arange(len(q)), 0))
    rank = np.arange(len(q)) - group_start
    over = np.zeros(table.num_rows, bool)
    over[idx[order[rank >= cap]]] = True
    if not over.any():
        return table
    reason = drop(table["reason"], pa.array(over), "cap")
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)
