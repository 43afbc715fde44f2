"""Image bytes of the demo web's collection records, made exactly as `wit web build` makes them (its own renderers),
cached per process so tasks that share images (e.g. emoji-group and shift-emoji) render each one once."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from wit_builder.paths import debian_path
from wit_builder.web.build import _render_emoji, _render_svg
from wit_builder.web.sources import ImageRecord


@functools.lru_cache(maxsize=1)
def emoji_font():
    """Noto Color Emoji at the one size its bitmaps come in (109 px), as the web builder loads it."""
    from PIL import ImageFont

    path = debian_path("usr/share/fonts/truetype/noto/NotoColorEmoji.ttf", "fonts-noto-color-emoji")
    return ImageFont.truetype(str(path), 109)


@functools.cache
def emoji_png(char: str) -> bytes:
    """One emoji rendered with the colour font and cropped to its drawing (the web builder's renderer)."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "e.png"
        _render_emoji(char, dst, emoji_font())
        return dst.read_bytes()


@functools.cache
def svg_png(path: str) -> bytes | None:
    """An SVG-only stamp rendered to a 256 px wide PNG as the web builder does; None when cairosvg refuses it."""
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / "s.png"
        try:
            _render_svg(Path(path), dst)
        except Exception:  # noqa: BLE001 - some stamp SVGs use XML entities that cairosvg refuses
            return None
        return dst.read_bytes()


def record_png(rec: ImageRecord) -> bytes | None:
    """The PNG a record publishes: its file, its rendered SVG, or its rendered emoji."""
    if rec.emoji is not None:
        return emoji_png(rec.emoji)
    if rec.path is None:
        return None
    if rec.path.suffix == ".svg":
        return svg_png(str(rec.path))
    return rec.path.resolve().read_bytes()
