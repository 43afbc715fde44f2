"""Seeded, deterministic noise that makes the demo pool look like the crawled web (rates per image or per pair).

Every decision is a hash of (seed, kind, key) mapped to [0, 1), so the same seed always gives the same web, whatever
the order of work, and a different seed a different one. Rates (RATES below) are per image for URL-level noise and
per pair for text-level noise; broken images are a fixed handful (BROKEN).

image level:  dead_link 2% (the file is never published: every URL of it answers 404) · mirror_url 10% (the same
              file also under /mirror/..., one extra pair) · query_url 5% (the same URL with ?w=512, one extra pair)
pair level:   empty_text 1% · whitespace_text 0.5% · long_text 0.3% (a page-like text of >= 8,000 characters) ·
              html_entities 1% (HTML-escaped, with &nbsp;) · mojibake 1% (UTF-8 read as Latin-1, only where it changes
              the text) · duplicate_pair 1% (the exact same (url, text) again under a new uid)
broken files: truncated_image 5 (half a PNG) · not_an_image 5 (an HTML page behind a .png URL) ·
              huge_image 1 (a valid 600 KB PNG of 10,000 x 10,000 RGBA pixels, 400 MB decoded: under Pillow's own
              limit, so only a downloader's size check stops it) · huge_header 1 (a 200-byte PNG that declares
              30,000 x 30,000 pixels and holds one row: Pillow refuses it at open with DecompressionBombError)
Natural noise is kept as found: empty Open Clip Art descriptions, author names as titles, identical drawings under
different names.
"""

from __future__ import annotations

import hashlib
import html
import struct
import zlib

RATES: dict[str, float] = {
    "dead_link": 0.02,
    "mirror_url": 0.10,
    "query_url": 0.05,
    "empty_text": 0.01,
    "whitespace_text": 0.005,
    "long_text": 0.003,
    "html_entities": 0.01,
    "mojibake": 0.01,
    "duplicate_pair": 0.01,
}
BROKEN: dict[str, int] = {"truncated_image": 5, "not_an_image": 5, "huge_image": 1, "huge_header": 1}
LONG_TEXT_CHARS = 8_000


def chance(seed: int, kind: str, key: str) -> float:
    """A deterministic draw in [0, 1) for (seed, kind, key)."""
    digest = hashlib.blake2b(f"{seed}\x1f{kind}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def hits(seed: int, kind: str, key: str) -> bool:
    return chance(seed, kind, key) < RATES[kind]


def text_noise(seed: int, key: str, text: str, page: list[str]) -> tuple[str, str | None]:
    """Apply at most one text-level noise to a pair; returns (text, kind or None). `page` = the image's other texts."""
    if hits(seed, "empty_text", key):
        return "", "empty_text"
    if hits(seed, "whitespace_text", key):
        return " \t  \n ", "whitespace_text"
    if hits(seed, "long_text", key):
        return long_page(text, page), "long_text"
    if hits(seed, "html_entities", key):
        escaped = html.escape(text, quote=True).replace(" ", "&nbsp;", 1)
        if escaped != text:
            return escaped, "html_entities"
    if hits(seed, "mojibake", key):
        garbled = text.encode("utf-8").decode("latin-1")
        if garbled != text:
            return garbled, "mojibake"
    return text, None


def long_page(text: str, page: list[str]) -> str:
    """A page-like text: the caption, then the page's other texts and boilerplate, repeated past LONG_TEXT_CHARS."""
    parts = [text] + [p for p in page if p.strip()] + ["Home", "About", "Share this image", "Related drawings"]
    out: list[str] = []
    size = 0
    while size < LONG_TEXT_CHARS:
        for part in parts:
            out.append(part)
            size += len(part) + 3
    return " | ".join(out)


def truncated_png(data: bytes) -> bytes:
    """The first half of a real PNG: a download that broke off."""
    return data[: max(16, len(data) // 2)]


NOT_AN_IMAGE = (
    b"<!doctype html><html><head><title>Image not found</title></head>"
    b"<body><h1>Sorry, this image was moved.</h1></body></html>\n"
)


def bomb_png(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid all-transparent RGBA PNG of width x height pixels (default 100 Mpx, 400 MB decoded: under Pillow's own
    bomb limit, so only a size check before decoding stops it), a few hundred KB on disk, built in milliseconds.

    After a full flush a deflate stream keeps no history, so every identical scanline compresses to the same bytes:
    one block is repeated `height` times, and the Adler-32 of the raw data is accumulated row by row."""
    row = b"\x00" * (width * 4 + 1)  # filter byte + RGBA zeros
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; the zlib header and checksum are written here
    block = deflate.compress(row) + deflate.flush(zlib.Z_FULL_FLUSH)
    final = deflate.flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(height):
        adler = zlib.adler32(row, adler)
    idat = b"\x78\xda" + block * height + final + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return _png(header, idat)


def header_bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header declares width x height RGBA pixels (3.6 GB decoded at 30,000 x 30,000) but whose data
    is a single transparent row: only the header's size can be trusted, and it must be checked before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return _png(header, zlib.compress(b"\x00" * (width * 4 + 1), 9))


def _png(header: bytes, idat: bytes) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
