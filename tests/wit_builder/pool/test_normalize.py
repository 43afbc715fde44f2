"""Text normalisation: repairs, entities, control characters, whitespace, length; empty results get a reason."""

from __future__ import annotations

import pyarrow as pa

from wit_builder.config import CurateConfig
from wit_builder.pool.normalize import normalize_batch, normalize_text
from wit_builder.pool.read import READ_SCHEMA


def test_normalize_text_cases():
    assert normalize_text("Caf\u00c3\u00a9  au   lait", 100) == "Café au lait"  # mojibake repaired by ftfy
    assert normalize_text("Fish &amp; Chips&#33;", 100) == "Fish & Chips!"
    assert normalize_text("a\x00b\tc\nd\u200be", 100) == "a b c d e"
    assert normalize_text("e\u0301cole", 100) == "école"  # NFC
    assert normalize_text("one two three", 7) == "one two"
    assert normalize_text("one two three", 8) == "one two"
    assert normalize_text("abcdefgh", 3) == "abc"
    assert normalize_text(None, 10) == "" and normalize_text(" \t ", 10) == ""


def test_batch_marks_missing_url_and_empty_text_and_keeps_every_row():
    pool = pa.table({"uid": list("abcde"), "url": ["http://x", None, " ", "http://y", "http://z"],
                     "text": ["  hi  ", "t", "t", "\u200b \n", None], "source": [None] * 5,
                     "reason": [None, None, None, None, None]}, schema=READ_SCHEMA)
    out = normalize_batch(pool, CurateConfig())
    assert out.num_rows == 5
    assert out["reason"].to_pylist() == [None, "missing_url", "missing_url", "empty_text", "empty_text"]
    assert out["text"][0].as_py() == "hi"


def test_earlier_reason_wins():
    pool = pa.table({"uid": ["a"], "url": [None], "text": [None], "source": [None], "reason": ["invalid_utf8"]},
                    schema=READ_SCHEMA)
    assert normalize_batch(pool)["reason"].to_pylist() == ["invalid_utf8"]
