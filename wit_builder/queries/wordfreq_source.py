"""The offline stand-in for English Wikipedia unigram counts: wordfreq's `large_en` list.

Conversion: wordfreq gives a word's frequency f (its share of all tokens, blended over Wikipedia, subtitles, news,
books, web text and more). We estimate its occurrences in English Wikipedia as round(f * REFERENCE_TOKENS), with
REFERENCE_TOKENS = 4.5e9 words, so "at least 100 occurrences" means f >= 100 / 4.5e9 ≈ 2.2e-8 (Zipf >= 1.35).
wordfreq lower-cases words and replaces every run of two or more digits by zeros (`1999` -> `0000`); those
placeholders are not words and are dropped (reason `digit_placeholder`).
"""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa

from wit_builder.queries.config import REFERENCE_TOKENS

_PLACEHOLDER = re.compile(r"\d{2,}")


def wordfreq_unigrams(min_count: int, reference_tokens: int = REFERENCE_TOKENS) -> tuple[pa.Table, Counter]:
    """(query, count) for words whose estimated English Wikipedia count is at least min_count."""
    import wordfreq

    stats: Counter = Counter()
    words, counts = [], []
    for word, freq in wordfreq.get_frequency_dict("en", wordlist="large").items():
        stats["words"] += 1
        count = round(freq * reference_tokens)
        if count < min_count:
            stats["below_threshold"] += 1
            continue
        if _PLACEHOLDER.search(word):
            stats["digit_placeholder"] += 1
            continue
        words.append(word)
        counts.append(count)
    return pa.table({"query": words, "count": pa.array(counts, pa.int64())}), stats
