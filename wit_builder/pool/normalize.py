"""Clean caption text before anything else looks at it: ftfy, HTML entities, control characters, whitespace, length.

Per alive row: a null or blank url -> `missing_url`; text is repaired with ftfy (mojibake, NFC; only for non-ASCII
text or terminal escapes, since ftfy leaves plain ASCII unchanged otherwise), HTML entities are unescaped,
control and format characters become spaces, whitespace runs collapse to one space, the ends are stripped and the
text is cut to `max_chars` (at the last space before the limit when there is one). An empty result -> `empty_text`.
"""

from __future__ import annotations

import html
import re
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.config import CurateConfig
from wit_builder.ledger import drop

_CONTROL_BUT_ESC = re.compile(r"[\x00-\x1a\x1c-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


def normalize_text(text: str | None, max_chars: int) -> str:
    """One caption, cleaned; '' when nothing is left."""
    if not text:
        return ""
    text = _CONTROL_BUT_ESC.sub(" ", text)  # first, so ftfy and the ASCII path treat them alike
    if not text.isascii() or "\x1b" in text:
        import ftfy

        text = ftfy.fix_text(text)
    if "&" in text:
        text = html.unescape(text)
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = len(cut) if text[max_chars] == " " else cut.rfind(" ")
        text = (cut[:space] if space > 0 else cut).rstrip()
    return text


def normalize_batch(table: pa.Table, cfg: CurateConfig = CurateConfig()) -> pa.Table:
    """Clean `text` of the alive rows and mark `missing_url` / `empty_text`; every row stays in the table."""
    reason = table["reason"]
    url_blank = pc.or_kleene(pc.is_null(table["url"]), pc.equal(pc.utf8_trim_whitespace(table["url"]), ""))
    reason = drop(reason, pc.fill_null(url_blank, True), "missing_url")
    alive = pc.is_null(reason).to_pylist()
    cleaned = [normalize_text(t, cfg.max_chars) if keep else t
               for t, keep in zip(table["text"].to_pylist(), alive)]
    text = pa.array(cleaned, pa.string())
    reason = drop(reason, pc.equal(text, "").fill_null(True), "empty_text")
    table = table.set_column(table.schema.get_field_index("text"), "text", text)
    return table.set_column(table.schema.get_field_index("reason"), "reason", reason)
