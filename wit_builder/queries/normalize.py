"""The one normal form every query is stored in, because the matcher (MetaCLIP's substring rule, match/reference.py)
relies on it.

Rules, in order (docs/queries.md):
1. Unicode NFC; `_` becomes a space only where the source says so (WordNet lemmas, titles), not here.
2. Any run of whitespace (tabs, newlines, NBSP, ...) becomes one space; leading and trailing whitespace is stripped.
3. Case is kept as the source wrote it: the matcher is case-sensitive, so `apple` and `Apple` are two queries.
4. An entry holding one of the matcher's separators , . ; : ? ! or ` is dropped (reason `punctuation`): the matcher
   spaces those characters out of every text, so such an entry could never match. The double quote is no separator
   (MetaCLIP leaves it on its word), so `"Weird Al"` is kept and matches a caption holding `"Weird Al"`.
5. Empty entries are dropped (reason `empty`).
"""

from __future__ import annotations

import re
import unicodedata

from wit_builder.match.reference import WRAPPED

SEPARATORS = "".join(WRAPPED)
_WHITESPACE = re.compile(r"\s+")
_HAS_SEPARATOR = re.compile("[" + re.escape(SEPARATORS) + "]")


def normalize(text: str) -> tuple[str | None, str | None]:
    """(query, None) in normal form, or (None, reason) when the entry cannot be a query."""
    query = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if not query:
        return None, "empty"
    if _HAS_SEPARATOR.search(query):
        return None, "punctuation"
    return query, None


def is_normal(query: str) -> bool:
    """True when `query` is already in normal form (the matcher may assert this on the list it loads)."""
    return normalize(query) == (query, None)
