"""Text normalisation: repairs, entities, control characters, whitespace, length; empty results get a reason."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from wit_builder.config import CurateConfig
from wit_builder.pool.normalize import cut_stored_text, normalize_batch, normalize_text
from wit_builder.pool.read import READ_SCHEMA


def test_normalize_text_cases():
    assert normalize_text("Caf\u00c3\u00a9  au   lait") == "Café au lait"  # mojibake repaired by ftfy
    assert normalize_text("Fish &amp; Chips&#33;") == "Fish & Chips!"
    assert normalize_text("a\x00b\tc\nd\u200be") == "a b c d e"
    assert normalize_text("e\u0301cole") == "école"  # NFC
    assert normalize_text(None) == "" and normalize_text(" \t ") == ""


def test_entities_are_decoded_before_ftfy_so_mojibake_in_entities_is_repaired():
    assert normalize_text("caf&Atilde;&copy; au lait") == "café au lait"
    assert normalize_text("Caf&#195;&#169;") == "Café"
    assert normalize_text("&amp;lt; é") == "&lt; é"  # entities are decoded once, not twice (ftfy does not redo it)


def test_the_whole_caption_is_kept_for_matching():
    long = "word " * 500 + "hot dog"
    assert normalize_text(long).endswith(" hot dog") and len(normalize_text(long)) == 2507


def test_cut_stored_text_cuts_at_a_space_and_counts():
    texts = pa.array(["one two three", "one two three", "abcdefgh", "short", None, "ab cd"], pa.string())
    cut, n = cut_stored_text(texts, 7)
    assert cut.to_pylist() == ["one two", "one two", "abcdefg", "short", None, "ab cd"] and n == 3
    assert cut_stored_text(texts, 8)[0][0].as_py() == "one two"  # the word the limit cuts through is dropped
    assert cut_stored_text(pa.array(["abcdefgh"]), 3) == (pa.array(["abc"]), 1)  # no space: a hard cut
    assert cut_stored_text(pa.array(["x a"]), 2)[0].to_pylist() == ["x"]


@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab é", max_size=30)), max_size=8), st.integers(1, 20))
def test_cut_text_is_a_short_enough_prefix(texts, max_chars):
    cut, n = cut_stored_text(pa.array(texts, pa.string()), max_chars)
    assert n == sum(t is not None and len(t) > max_chars for t in texts)
    for before, after in zip(texts, cut.to_pylist()):
        if before is None or len(before) <= max_chars:
            assert after == before
        else:
            assert before.startswith(after) and len(after) <= max_chars


def test_batch_does_not_cut():
    text = "a caption " * 200
    pool = pa.table(
        {"uid": ["a"], "url": ["http://x"], "text": [text], "source": [None], "reason": [None]}, schema=READ_SCHEMA
    )
    assert normalize_batch(pool, CurateConfig(max_chars=10))["text"][0].as_py() == text.strip()


def test_cut_stored_text_accepts_chunked_and_large_strings_and_leaves_short_ones_alone():
    chunked = pa.chunked_array([["a b c d"], ["ok", None]], pa.large_string())
    cut, n = cut_stored_text(chunked, 3)
    assert cut.type == pa.large_string() and cut.to_pylist() == ["a b", "ok", None] and n == 1
    same = pa.array(["ok"])
    assert cut_stored_text(same, 10) == (same, 0)
    assert cut_stored_text(pa.chunked_array([], pa.string()), 5) == (pa.array([], pa.string()), 0)


def test_batch_marks_missing_url_and_empty_text_and_keeps_every_row():
    pool = pa.table(
        {
            "uid": list("abcde"),
            "url": ["http://x", None, " ", "http://y", "http://z"],
            "text": ["  hi  ", "t", "t", "\u200b \n", None],
            "source": [None] * 5,
            "reason": [None, None, None, None, None],
        },
        schema=READ_SCHEMA,
    )
    out = normalize_batch(pool, CurateConfig())
    assert out.num_rows == 5
    assert out["reason"].to_pylist() == [None, "missing_url", "missing_url", "empty_text", "empty_text"]
    assert out["text"][0].as_py() == "hi"


def test_earlier_reason_wins():
    pool = pa.table(
        {"uid": ["a"], "url": [None], "text": [None], "source": [None], "reason": ["invalid_utf8"]}, schema=READ_SCHEMA
    )
    assert normalize_batch(pool)["reason"].to_pylist() == ["invalid_utf8"]
