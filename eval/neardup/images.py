"""Decoding and flattening shared by the hashes, the embedder and the augmentations."""

from __future__ import annotations

import io

from PIL import Image

from wit_builder.download.guard import check_image

WHITE = (255, 255, 255)


def decode(data: bytes) -> tuple[Image.Image | None, str | None]:
    """(image, None) for decodable bytes whose declared size passes the guard, else (None, reason); never raises."""
    error = check_image(data)
    if error is not None:
        return None, error
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure is a counted skip
        return None, f"decode error: {type(err).__name__}"
    return image, None


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """RGB copy with any transparency composited onto `background`: clip art's transparent pixels hold arbitrary colour."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an image: how an augmented copy enters the byte-level APIs."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
