"""The tokenisation behind unigram and bigram counts, chosen to agree with the matcher (docs/queries.md).

1. Prose is cut into segments at the matcher's separators , . ; : ? ! ` and at newlines, double quotes and brackets
   ()[]{}<>: a bigram never spans them, because the matcher would never see its two words as neighbours (a quote or
   bracket stays glued to its word in the spaced text).
2. A token is a run of letters and digits, with single inner apostrophes or hyphens (`don't`, `well-known`,
   `O'Brien`); everything else (other punctuation, symbols) separates tokens. Case is kept.
3. Bigrams are adjacent tokens within a segment, joined by one space.
"""

from __future__ import annotations

import re
from collections import Counter

_SEGMENT = re.compile(r"[,.;:?!\"`\n()\[\]{}<>]+")
_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def segments(prose: str) -> list[str]:
    return [s for s in _SEGMENT.split(prose) if s.strip()]


def tokens(segment: str) -> list[str]:
    return _TOKEN.findall(segment)


def count_into(prose: str, unigrams: Counter, bigrams: Counter) -> int:
    """Add the prose's unigrams and bigrams to the counters; returns the number of tokens."""
    total = 0
    for segment in segments(prose):
        words = tokens(segment)
        total += len(words)
        unigrams.update(words)
        if len(words) > 1:
            bigrams.update(zip(words, words[1:]))
    return total
