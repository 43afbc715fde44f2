"""Refuse an image by its declared size before anything decodes it: a decompression bomb (a few MB of PNG that
declares 16000x14464 px) otherwise takes a worker to 16+ GB inside img2dataset's resizer, which composites alpha in
float64 before it checks any size of its own.

Pillow's `Image.open` reads only the header, so the check costs microseconds and allocates nothing. Between
MAX_IMAGE_PIXELS and twice that Pillow warns (DecompressionBombWarning) instead of raising; the guard refuses those
images itself, so it silences that warning here, where it is handled (otherwise every worker prints it).
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image

DEFAULT_MAX_IMAGE_AREA = 40_000_000  # 40 Mpx: ~7,300 x 5,500; real web photos are far smaller after their CDN


def header_size(data: bytes | io.BytesIO) -> tuple[int, int]:
    """(width, height) from the image header without decoding pixels. Raises ValueError when the bytes are not an
    image Pillow recognises, or when Pillow's own bomb check (DecompressionBombError) fires."""
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    position = stream.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the area is checked by check_image
            with Image.open(stream) as image:
                return image.size
    except Image.DecompressionBombError as err:  # Pillow's own limit (2 x MAX_IMAGE_PIXELS) fired first
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise ValueError(f"image area too large ({pixels.group(1) + ' px' if pixels else err})") from err
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        detail = re.sub(r" <[^<>]* at 0x[0-9a-f]+>", "", str(err))  # no object address: equal causes, equal text
        raise ValueError(f"not a recognised image ({type(err).__name__}: {detail})") from err
    finally:
        stream.seek(position)


def check_image(data: bytes | io.BytesIO, max_area: int = DEFAULT_MAX_IMAGE_AREA) -> str | None:
    """None when the image may be decoded, else the error to record (e.g. 'image area too large (30000 x 30000)')."""
    try:
        width, height = header_size(data)
    except ValueError as err:
        return str(err)
    if width * height > max_area:
        return f"image area too large ({width} x {height})"
    return None


class GuardedResizer:
    """Wraps an img2dataset Resizer: checks the header first and only then lets it decode and resize. Same call
    signature and return tuple (img_str, width, height, original_width, original_height, error)."""

    def __init__(self, resizer, max_area: int = DEFAULT_MAX_IMAGE_AREA):
        self.resizer = resizer
        self.max_area = max_area

    def __call__(self, img_stream, blurring_bbox_list=None):
        error = check_image(img_stream, self.max_area)
        if error is not None:
            return None, None, None, None, None, error
        return self.resizer(img_stream, blurring_bbox_list)
