"""MetaCLIP's reference matcher (the `spacing` + substring rule of facebookresearch/MetaCLIP, metaclip/substr_matching.py),
re-implemented from its semantics: the ground truth the fast matcher is tested against.

The text is padded with a space on each side, each of , . ; : ? ! and the backtick is wrapped in spaces (the double
quote is not: MetaCLIP leaves it glued to its word), tabs, newlines and carriage returns become spaces; nothing is
lower-cased. An entry matches when " " + entry + " " occurs in that text, and a matched entry counts once per text.
The loop visits every entry for every text (about 20 texts per CPU-second with 500k entries): tests and benchmarks only.
"""

from __future__ import annotations

from collections.abc import Sequence

WRAPPED = (",", ".", ";", ":", "?", "!", "`")
SPACED = ("\t", "\n", "\r")


def spaced(text: str) -> str:
    """The text as the matcher sees it: padded, punctuation wrapped in spaces, tabs/newlines turned into spaces."""
    out = f" {text} "
    for mark in WRAPPED:
        out = out.replace(mark, f" {mark} ")
    for char in SPACED:
        out = out.replace(char, " ")
    return out


def match_reference(text: str, entries: Sequence[str]) -> list[int]:
    """Ids (positions in `entries`, ascending) of the entries that occur in `text` under the spacing rule."""
    haystack = spaced(text)
    return [i for i, entry in enumerate(entries) if f" {entry} " in haystack]
