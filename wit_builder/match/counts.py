"""Matches per query: the partial count of one batch (a bincount) and the sum of partials (the global aggregation)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def match_batch(table: pa.Table, automaton) -> pa.Table:
    """Add `query_ids` (list<int32>, ascending) to every row (empty for dropped rows); alive rows with none -> no_match."""
    from wit_builder.ledger import drop

    alive = pc.is_null(table["reason"])
    texts = pc.if_else(alive, table["text"], pa.scalar(None, pa.string()))
    ids = automaton.match(texts)
    reason = drop(table["reason"], pc.equal(pc.list_value_length(ids), 0), "no_match")
    table = table.set_column(table.schema.get_field_index("reason"), "reason", reason)
    return table.append_column("query_ids", ids)


def partial_counts(query_ids, n_queries: int, mask=None) -> np.ndarray:
    """How many rows contain each query (rows where `mask` is false do not count)."""
    if isinstance(query_ids, pa.ChunkedArray):
        query_ids = query_ids.combine_chunks() if query_ids.num_chunks else pa.array([], pa.list_(pa.int32()))
    if mask is not None:
        query_ids = pc.if_else(mask, query_ids, pa.scalar([], pa.list_(pa.int32())))
        if isinstance(query_ids, pa.ChunkedArray):
            query_ids = query_ids.combine_chunks()
    flat = np.asarray(pc.list_flatten(query_ids).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.bincount(flat, minlength=n_queries).astype(np.int64)


def merge_counts(parts: Iterable[np.ndarray], n_queries: int) -> np.ndarray:
    total = np.zeros(n_queries, dtype=np.int64)
    for part in parts:
        total += part
    return total
