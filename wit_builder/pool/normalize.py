"""Clean caption text before anything else looks at it: HTML entities, ftfy, control characters, whitespace.

Per alive row: a null or blank url -> `missing_url`; HTML entities are unescaped first (so mojibake spelled as
entities, `&Atilde;&copy;`, is seen by ftfy), then ftfy repairs the text (mojibake, NFC; only for non-ASCII text or
terminal escapes, since ftfy leaves plain ASCII unchanged otherwise; it does not unescape entities a second time),
control and format characters become spaces, whitespace runs collapse to one space and the ends are stripped. An
empty result -> `empty_text`. The whole caption is kept, since MetaCLIP matches queries against the whole text;
only the text that is stored is cut (cut_stored_text).
"""

from __future__ import annotations

import html
import re

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.config import CurateConfig
from wit_builder.ledger import drop

_CONTROL_BUT_ESC = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def normalize_text(text: str | None) -> str:
    """One caption, cleaned (never cut); '' when nothing is left."""
    if not text:
        return ""
    text = _CONTROL_BUT_ESC.sub(" ", text)  # first, so ftfy and the ASCII path treat them alike
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii() or "\x1b" in text:
        import ftfy

        text = ftfy.fix_text(text, unescape_html=False)
    text = _CONTROL.sub(" ", text)
    return " ".join(text.split())


def normalize_batch(table: pa.Table, cfg: CurateConfig | None = None) -> pa.Table:
    """Clean `text` of the alive rows and mark `missing_url` / `empty_text`; every row stays in the table.

    `cfg` is accepted for the callers' sake and unused: nothing here depends on the curation settings."""
    reason = table["reason"]
    url_blank = pc.or_kleene(pc.is_null(table["url"]), pc.equal(pc.utf8_trim_whitespace(table["url"]), ""))
    reason = drop(reason, pc.fill_null(url_blank, True), "missing_url")
    alive = pc.is_null(reason).to_pylist()
    cleaned = [normalize_text(t) if keep else t for t, keep in zip(table["text"].to_pylist(), alive)]
    text = pa.array(cleaned, pa.string())
    reason = drop(reason, pc.equal(text, "").fill_null(True), "empty_text")
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)


def cut_stored_text(texts: pa.Array | pa.ChunkedArray, max_chars: int) -> tuple[pa.Array, int]:
    """Texts longer than max_chars cut for storage (at the last space before the limit when there is one), and how
    many were cut; nulls stay null. Matching has already seen the whole text."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    long = pc.fill_null(pc.greater(pc.utf8_length(texts), max_chars), False)
    n_cut = pc.sum(long).as_py() or 0
    if not n_cut:
        return texts, 0
    cut = [_cut(t, max_chars) if is_long else t for t, is_long in zip(texts.to_pylist(), long.to_pylist())]
    return pa.array(cut, texts.type), n_cut


def _cut(text: str, max_chars: int) -> str:
    """The first max_chars characters, shortened to the last whole word when a space allows it."""
    head = text[:max_chars]
    space = max_chars if text[max_chars] == " " else head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip()
