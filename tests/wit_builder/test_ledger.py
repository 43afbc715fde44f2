"""The accounting invariant: every pool row accounted exactly once, through the whole curation (property test)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wit_builder import ledger
from wit_builder.config import CurateConfig
from wit_builder.curate import accounting_table, curate, load_queries, query_counts, query_counts_table
from wit_builder.errors import WitError
from wit_builder.pool.langid import LanguageId
from wit_builder.pool.read import READ_SCHEMA

LID = LanguageId()
QUERIES = ["dog", "cat", "red apple", "apple", "New York"]
TEXTS = [
    "a dog",
    "the cat, the dog",
    "a red apple",
    "apple pie",
    "New York at night",
    "nothing to see",
    "Ein Hund im Park",
    "",
    "   ",
    None,
    "caf\u00e9 &amp; dog",
    "dog" * 3,
]


def _pool(rows):
    n = len(rows)
    return pa.table(
        {
            "uid": [f"u{i}" for i in range(n)],
            "url": [r[0] for r in rows],
            "text": [r[1] for r in rows],
            "source": pa.nulls(n, pa.string()),
            "reason": pa.nulls(n, pa.string()),
        },
        schema=READ_SCHEMA,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["http://x/1", "http://x/2", "http://x/3", None, ""]), st.sampled_from(TEXTS)),
        max_size=40,
    ),
    st.integers(1, 4),
    st.sampled_from(["paper", "metaclip"]),
)
def test_accounting_sums_to_the_pool(rows, cap, mode):
    pool = _pool(rows)
    result = curate(pool, QUERIES, CurateConfig(cap=cap, balance=mode), lid=LID)
    acc = accounting_table(result.table, QUERIES)
    ledger.assert_accounted(pool.num_rows, acc)
    reasons = ledger.count_reasons(acc["reason"])
    assert sum(reasons.values()) == pool.num_rows
    funnel = dict(ledger.funnel(reasons))
    assert funnel["pool"] == pool.num_rows and funnel["selected"] == reasons.get("selected", 0)
    q = query_counts_table(QUERIES, result.matched, query_counts(result.table, len(QUERIES)))
    if mode == "paper":
        assert max(q["kept_attributed"].to_pylist()) <= cap


def test_assert_accounted_catches_lost_and_double_rows():
    acc = pa.table({"uid": ["a", "b"], "status": ["kept", "filtered"], "reason": [None, "cap"]})
    ledger.assert_accounted(2, acc)
    with pytest.raises(WitError, match="lost rows"):
        ledger.assert_accounted(3, acc)
    with pytest.raises(WitError, match="uid twice"):
        ledger.assert_accounted(2, pa.table({"uid": ["a", "a"], "status": ["kept"] * 2, "reason": [None, None]}))


@pytest.mark.parametrize(
    "status, reason, ok",
    [
        ("selected", None, True),
        ("kept", None, True),
        ("filtered", "cap", True),
        ("failed", "deadline", True),
        ("failed", "download_failed", True),
        ("filtered", "no such reason", False),
        ("failed", "cap", False),
        ("failed", None, False),
        ("kept", "cap", False),
        ("filtered", None, False),
        ("selected", "deadline", False),
        ("done", None, False),
    ],
)
def test_assert_accounted_checks_every_status_and_reason_even_after_a_failure(status, reason, ok):
    """A failed row elsewhere in the table must not switch the reason check off (it once did)."""
    acc = pa.table(
        {
            "uid": ["a", "b", "c"],
            "status": ["failed", "filtered", status],
            "reason": ["download_failed", "language", reason],
        }
    )
    if ok:
        ledger.assert_accounted(3, acc)
    else:
        with pytest.raises(WitError, match="status"):
            ledger.assert_accounted(3, acc)


def test_funnel_order():
    steps = ledger.funnel({"selected": 2, "empty_text": 1, "language": 3, "no_match": 4, "duplicate": 1, "cap": 5})
    assert steps == [
        ("pool", 16),
        ("normalised", 15),
        ("language", 12),
        ("matched", 8),
        ("deduplicated", 7),
        ("selected", 2),
    ]


def test_query_list_skips_empty_and_duplicate_entries(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("dog\n\n  \ncat\ndog\n New   York \n")
    queries, report = load_queries(str(path))
    assert queries == ["dog", "cat", "New York"]
    assert report == {"read": 6, "empty": 2, "duplicate": 1}
    pq_path = tmp_path / "q.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"name": ["x"]}), pq_path)
    with pytest.raises(WitError, match="no 'query' column"):
        load_queries(str(pq_path))
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(WitError, match="holds no queries"):
        load_queries(str(tmp_path / "e.txt"))
