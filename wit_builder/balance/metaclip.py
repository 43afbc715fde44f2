"""MetaCLIP's balancing (--balance metaclip): keep a pair with probability 1 - prod(1 - min(1, t / count(q))).

The product runs over the queries the pair matches, count(q) is q's global match count. MetaCLIP draws unseeded;
here the draw is u = seeded_hash(uid) / 2^64, so the kept set is reproducible. It is NOT a hard cap: a frequent
query whose pairs also match rarer queries can keep far more than t pairs, up to 250 x t in a measurement on the demo web.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.balance import seeded_hash
from wit_builder.ledger import drop


def keep_probability(query_ids, counts: np.ndarray, t: int) -> np.ndarray:
    if isinstance(query_ids, pa.ChunkedArray):
        query_ids = query_ids.combine_chunks() if query_ids.num_chunks else pa.array([], pa.list_(pa.int32()))
    lengths = np.asarray(pc.list_value_length(query_ids).fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    flat = np.asarray(pc.list_flatten(query_ids).to_numpy(zero_copy_only=False), np.int64)
    p = np.zeros(len(query_ids))
    if not len(flat):
        return p
    miss = 1.0 - np.minimum(1.0, t / np.maximum(counts[flat], 1))
    has = lengths > 0
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[has]
    p[has] = 1.0 - np.multiply.reduceat(miss, starts)
    return p


def apply_metaclip(table: pa.Table, counts: np.ndarray, t: int, seed: int = 0) -> pa.Table:
    """Drop (reason `cap`) the alive rows whose seeded draw is not below their keep probability."""
    p = keep_probability(table["query_ids"], counts, t)
    u = seeded_hash(table["uid"], seed, "metaclip").astype(np.float64) / 2.0**64
    out = pa.array(u >= p)
    reason = drop(table["reason"], out, "cap")
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)
