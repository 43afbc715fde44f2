"""Exact deduplication: one pair per url, the winner chosen by seeded hash, whatever the partitioning."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.balance.dedup import mark_duplicates


def _table(rows, reasons=None):
    return pa.table(
        {
            "uid": [f"u{i}" for i in range(len(rows))],
            "url": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "reason": pa.array(reasons or [None] * len(rows), pa.string()),
        }
    )


def test_one_pair_per_url_with_reasons():
    out = mark_duplicates(
        _table(
            [("a", "x"), ("a", "x"), ("a", "y"), ("b", "x"), ("c", "z"), ("c", "z")],
            [None, None, None, None, None, "language"],
        )
    )
    reasons = out["reason"].to_pylist()
    assert reasons[3] is None and reasons[4] is None and reasons[5] == "language"  # dropped rows do not compete
    group = reasons[:3]
    assert group.count(None) == 1
    winner = group.index(None)
    if winner in (0, 1):
        assert sorted(r for r in group if r) == ["duplicate", "duplicate_url"]
    else:
        assert group[:2] == ["duplicate_url", "duplicate_url"]


rows = st.lists(st.tuples(st.sampled_from("abcde"), st.sampled_from("xyz")), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(rows, st.integers(0, 3), st.integers(1, 4))
def test_independent_of_partitioning_by_url(data, seed, parts):
    table = _table(data)
    whole = mark_duplicates(table, seed)
    kept = set(whole.filter(pc.is_null(whole["reason"]))["uid"].to_pylist())
    assert len(kept) == len({u for u, _ in data})
    split = set()
    for p in range(parts):
        part = table.filter(pa.array([hash(u) % parts == p for u, _ in data]))
        marked = mark_duplicates(part, seed)
        split |= set(marked.filter(pc.is_null(marked["reason"]))["uid"].to_pylist())
    assert split == kept
