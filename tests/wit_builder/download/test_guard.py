"""The size guard reads the declared size from the header only and refuses large images before any decode."""

from __future__ import annotations

import io
import resource

import pytest
from image_web import declared_png, make_image

from wit_builder.download.guard import GuardedResizer, check_image, header_size


def test_header_size_of_real_images():
    assert header_size(make_image(400, 300, "jpg")) == (400, 300)
    assert header_size(make_image(120, 90, "rgba")) == (120, 90)


def test_bomb_refused_from_header_without_allocating():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert check_image(declared_png(30000, 30000)) == "image area too large (900000000 px)"  # Pillow's own check
    assert check_image(declared_png(7000, 7000)) == "image area too large (7000 x 7000)"  # ours: 49 Mpx > 40 Mpx
    assert check_image(declared_png(7000, 7000), max_area=50_000_000) is None
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 50_000  # a decode of 900 Mpx would take 900 MB


def test_non_images_and_stream_position():
    # the same text for every such body (Pillow's message names the stream object by its address): one table row
    assert (
        check_image(b"<html>hi</html>") == "not a recognised image (UnidentifiedImageError: cannot identify image file)"
    )
    assert check_image(b"").startswith("not a recognised image")
    stream = io.BytesIO(make_image(300, 200, "png"))
    stream.seek(5)
    assert check_image(stream) is None
    assert stream.tell() == 5  # the resizer reads from where it was


def test_guarded_resizer_passes_good_images_to_the_resizer():
    from img2dataset.resizer import Resizer

    guarded = GuardedResizer(Resizer(image_size=256, resize_mode="keep_ratio", resize_only_if_bigger=False))
    img, width, height, original_width, original_height, error = guarded(io.BytesIO(make_image(600, 400, "jpg")))
    assert error is None and (width, height, original_width, original_height) == (384, 256, 600, 400)
    assert guarded(io.BytesIO(declared_png(7000, 7000)))[-1] == "image area too large (7000 x 7000)"


def test_pillow_bomb_warning_is_silenced_and_the_image_refused():
    """10000 x 10000 is past Pillow's MAX_IMAGE_PIXELS (a DecompressionBombWarning, printed by every worker) but under
    its error threshold: the guard refuses it itself, and no warning escapes."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_image(declared_png(10000, 10000)) == "image area too large (10000 x 10000)"
        guarded = GuardedResizer(lambda *_: pytest.fail("decoded"))
        assert guarded(io.BytesIO(declared_png(10000, 10000)))[-1] == "image area too large (10000 x 10000)"
        warnings.warn("still on", UserWarning, stacklevel=1)  # the filters outside the guard are untouched
    assert [w.category for w in caught] == [UserWarning]
    assert not any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
