"""MetaCLIP's sampling: the documented probability, seeded, and not a hard cap."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.balance.metaclip import apply_metaclip, keep_probability


def test_probability_formula():
    ids = pa.array([[0], [1], [0, 1], []], pa.list_(pa.int32()))
    p = keep_probability(ids, np.array([100, 10]), t=10)
    assert np.allclose(p, [0.1, 1.0, 1.0, 0.0])
    p = keep_probability(pa.array([[0, 1]], pa.list_(pa.int32())), np.array([100, 40]), t=10)
    assert np.allclose(p, [1 - 0.9 * 0.75])


def _run(n, seed):
    table = pa.table(
        {
            "uid": [f"u{i}" for i in range(n)],
            "reason": pa.nulls(n, pa.string()),
            "query_ids": pa.array([[0]] * n, pa.list_(pa.int32())),
        }
    )
    out = apply_metaclip(table, np.array([n]), t=100, seed=seed)
    return set(out.filter(pc.is_null(out["reason"]))["uid"].to_pylist())


def test_seeded_rate_and_not_a_hard_cap():
    a = _run(4000, 0)
    assert a == _run(4000, 0) and a != _run(4000, 1)
    assert 60 <= len(a) <= 140  # expected 100 = t; a draw, not a cap
