"""Helpers for the loopback image web used by the download tests (and the download benchmark)."""

from __future__ import annotations

import io
import re
import threading
import struct
import zlib

from PIL import Image

SLOW_SECONDS = 8.0  # > 2 attempts x the tests' 3 s timeout


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height grey pixels, with only a few rows of data: never allocated."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    rows = zlib.compress(b"\x00" * (width + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def make_image(width: int, height: int, fmt: str, seed: int = 0) -> bytes:
    """A deterministic image with some structure (so JPEG sizes vary), in PNG, RGBA PNG or JPEG."""
    mode = "RGBA" if fmt == "rgba" else "RGB"
    image = Image.new(mode, (width, height), (seed * 37 % 256, seed * 91 % 256, 200, 255)[: len(mode)])
    for i in range(0, width, 16):
        image.paste((i % 256, 255 - i % 256, seed % 256, 128)[: len(mode)], (i, 0, min(i + 8, width), height))
    out = io.BytesIO()
    image.save(out, "JPEG" if fmt == "jpg" else "PNG", quality=90)
    return out.getvalue()


IMAGE_ROUTE = re.compile(r"^/img/(?P<w>\d+)x(?P<h>\d+)-(?P<seed>\d+)\.(?P<fmt>png|jpg|rgba)$")


class ImageWeb:
    """Handle to the running server: base URL, recorded requests, and a lock-protected flaky counter."""

    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.allow = f"127.0.0.1:{self.port}"
        self.requests: list[str] = []
        self.flaky_seen: set[str] = set()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base + path

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.flaky_seen.clear()
