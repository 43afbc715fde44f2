"""Noise is deterministic per seed and does what it says; the broken files really are broken."""

import io
import warnings

import pytest
from PIL import Image

from wit_builder.web import noise


def test_chance_is_deterministic_and_seeded():
    assert noise.chance(0, "dead_link", "a") == noise.chance(0, "dead_link", "a")
    assert noise.chance(0, "dead_link", "a") != noise.chance(1, "dead_link", "a")
    draws = [noise.chance(0, "k", str(i)) for i in range(20_000)]
    assert all(0 <= d < 1 for d in draws)
    assert abs(sum(d < 0.02 for d in draws) / len(draws) - 0.02) < 0.005


def test_text_noise_kinds():
    page = ["A frog.", "Ein Frosch."]
    seen = {}
    for i in range(3000):
        text, kind = noise.text_noise(0, f"k{i}", "Café & crème, très “bon”", page)
        seen.setdefault(kind, text)
    assert seen["empty_text"] == ""
    assert seen["whitespace_text"].strip() == ""
    assert len(seen["long_text"]) >= noise.LONG_TEXT_CHARS and "Ein Frosch." in seen["long_text"]
    assert "&amp;" in seen["html_entities"] and "&nbsp;" in seen["html_entities"]
    assert seen["mojibake"] == "Café & crème, très “bon”".encode().decode("latin-1")
    assert seen[None] == "Café & crème, très “bon”"


def test_mojibake_never_labels_an_unchanged_text():
    for i in range(5000):
        text, kind = noise.text_noise(0, f"k{i}", "plain ascii", [])
        if kind == "mojibake":
            pytest.fail("ASCII text cannot be garbled, so it must not be labelled mojibake")


def test_bomb_png_declares_a_huge_image_in_a_small_valid_file():
    small = noise.bomb_png(300, 200)
    image = Image.open(io.BytesIO(small))
    image.load()
    assert image.size == (300, 200) and image.mode == "RGBA" and image.getextrema()[3] == (0, 0)
    big = noise.bomb_png()
    assert len(big) < 1_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Image.open(io.BytesIO(big)).size == (10_000, 10_000)  # header only: never decoded here


def test_header_bomb_png_is_tiny_and_refused_by_pillow_at_open():
    bomb = noise.header_bomb_png()
    assert len(bomb) < 1_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            assert Image.open(io.BytesIO(bomb)).size == (30_000, 30_000)  # header only
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def test_truncated_png_is_a_prefix_that_fails_to_decode():
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "PNG")
    cut = noise.truncated_png(buf.getvalue())
    assert buf.getvalue().startswith(cut) and len(cut) < len(buf.getvalue())
    with pytest.raises(OSError):
        Image.open(io.BytesIO(cut)).load()
