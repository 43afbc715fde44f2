import re

import wordfreq

from wit_builder.queries.config import REFERENCE_TOKENS
from wit_builder.queries.wordfreq_source import wordfreq_unigrams


def test_conversion_and_threshold():
    table, stats = wordfreq_unigrams(100)
    got = dict(zip(table["query"].to_pylist(), table["count"].to_pylist()))
    freqs = wordfreq.get_frequency_dict("en", wordlist="large")
    assert got["the"] == round(freqs["the"] * REFERENCE_TOKENS)
    assert min(got.values()) >= 100
    expected = {w for w, f in freqs.items() if round(f * REFERENCE_TOKENS) >= 100 and not re.search(r"\d\d", w)}
    assert set(got) == expected
    assert not any(w in got for w in ("00", "0000"))  # digit placeholders are not words
    assert stats["words"] == len(freqs)
    assert stats["words"] == len(got) + stats["below_threshold"] + stats["digit_placeholder"]
