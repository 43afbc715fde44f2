"""Language identification with the real lid.176 model."""

from __future__ import annotations

import pyarrow as pa

from wit_builder.config import CurateConfig
from wit_builder.pool.langid import LanguageId


def test_keeps_english_and_records_language_and_score():
    table = pa.table(
        {
            "uid": list("abcd"),
            "text": [
                "A blue car parked on the road",
                "Ein roter Apfel auf dem Tisch",
                "un chien qui court dans le parc",
                "ignored",
            ],
            "reason": [None, None, None, "empty_text"],
        }
    )
    out = LanguageId()(table, CurateConfig())
    assert out["lang"].to_pylist()[:3] == ["en", "de", "fr"] and out["lang"][3].as_py() is None
    assert out["reason"].to_pylist() == [None, "language", "language", "empty_text"]
    assert 0.5 < out["lang_score"][0].as_py() <= 1.0


def test_threshold_and_language_list():
    table = pa.table(
        {
            "uid": ["a", "b"],
            "text": ["A blue car parked on the road", "Ein roter Apfel auf dem Tisch"],
            "reason": pa.array([None, None], pa.string()),
        }
    )
    out = LanguageId()(table, CurateConfig(languages=("en", "de"), lang_threshold=0.99999))
    assert out["reason"].to_pylist() == ["language", "language"]
    out = LanguageId()(table, CurateConfig(languages=("en", "de"), lang_threshold=0.0))
    assert out["reason"].to_pylist() == [None, None]
