"""The match stage marks no_match, and counts add up per query whatever the batching."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from wit_builder.match.automaton import TokenAutomaton
from wit_builder.match.counts import match_batch, merge_counts, partial_counts


def _table(texts, reasons=None):
    n = len(texts)
    return pa.table(
        {
            "uid": [str(i) for i in range(n)],
            "text": pa.array(texts, pa.string()),
            "reason": pa.array(reasons or [None] * n, pa.string()),
        }
    )


def test_match_batch_marks_no_match_and_skips_dropped_rows():
    auto = TokenAutomaton(["dog", "cat"])
    out = match_batch(_table(["a dog", "nothing", "a cat and a dog", "dog"], [None, None, None, "language"]), auto)
    assert out["query_ids"].to_pylist() == [[0], [], [0, 1], []]
    assert out["reason"].to_pylist() == [None, "no_match", None, "language"]


def test_counts_are_the_same_for_any_batching():
    ids = pa.array([[0, 2], [1], [], [2], [0, 1, 2]], pa.list_(pa.int32()))
    whole = partial_counts(ids, 4)
    assert whole.tolist() == [2, 2, 3, 0]
    parts = [partial_counts(ids.slice(i, 2), 4) for i in range(0, 5, 2)]
    assert np.array_equal(merge_counts(parts, 4), whole)
    masked = partial_counts(ids, 4, pa.array([True, False, True, True, False]))
    assert masked.tolist() == [1, 0, 2, 0]
