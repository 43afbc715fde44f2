"""Synthetic near-duplicates: the paper's transforms (crop and zoom, aspect distortion, down/up-scaling, rotation,
JPEG, HSV jitter) plus what web copies of clip art show (flips, frames, text, logos, flattened alpha, ...).

Every transform is a pure function `(image, rng) -> image` on an RGBA image; randomness comes only from the
`np.random.Generator`, so one seed gives one output."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def crop_zoom(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keep 70-95 % of each side at a random offset, scaled back to the original size."""
    w, h = image.size
    cw, ch = max(1, round(w * _uniform(rng, 0.7, 0.95))), max(1, round(h * _uniform(rng, 0.7, 0.95)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return image.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC)


def aspect(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Stretch one side by 0.7-0.9 or 1.1-1.4."""
    w, h = image.size
    factor = _uniform(rng, 0.7, 0.9) if rng.random() < 0.5 else _uniform(rng, 1.1, 1.4)
    size = (max(1, round(w * factor)), h) if rng.random() < 0.5 else (w, max(1, round(h * factor)))
    return image.resize(size, Image.BICUBIC)


def rescale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Down-scale to 20-60 % and back up: the blur of a thumbnail re-enlarged."""
    w, h = image.size
    f = _uniform(rng, 0.2, 0.6)
    small = image.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BILINEAR)
    return small.resize((w, h), Image.BICUBIC)


def rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate by 3-12 degrees either way, corners transparent."""
    angle = _uniform(rng, 3, 12) * (1 if rng.random() < 0.5 else -1)
    return image.rotate(angle, resample=Image.BICUBIC, fillcolor=(0, 0, 0, 0))


def jpeg(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Flatten onto white and re-encode as JPEG at quality 15-85."""
    out = io.BytesIO()
    flatten(image, rng, background=(255, 255, 255)).convert("RGB").save(out, "JPEG", quality=int(rng.integers(15, 86)))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGBA")


def hsv_jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Shift hue by up to 8 % of the wheel and scale saturation and value by 0.7-1.3; alpha kept."""
    alpha = image.getchannel("A")
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32)
    hsv[..., 0] = (hsv[..., 0] + 256 * _uniform(rng, 0.02, 0.08) * (1 if rng.random() < 0.5 else -1)) % 256
    hsv[..., 1] *= _uniform(rng, 0.7, 1.3)
    hsv[..., 2] *= _uniform(rng, 0.7, 1.3)
    rgb = Image.fromarray(np.clip(hsv, 0, 255).astype(np.uint8), "HSV").convert("RGB")
    rgb.putalpha(alpha)
    return rgb


def hflip(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror left to right."""
    return ImageOps.mirror(image)


def grayscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Luminance only; alpha kept."""
    out = image.convert("L").convert("RGBA")
    out.putalpha(image.getchannel("A"))
    return out


def gamma(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gamma 0.5-0.8 or 1.25-2.0 on the colour channels."""
    g = _uniform(rng, 0.5, 0.8) if rng.random() < 0.5 else _uniform(rng, 1.25, 2.0)
    table = [round(255 * (i / 255) ** g) for i in range(256)]
    return image.point(table * 3 + list(range(256)))


def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur of radius 0.6-1.5 % of the shorter side (at least 1 px)."""
    return image.filter(ImageFilter.GaussianBlur(max(1.0, min(image.size) * _uniform(rng, 0.006, 0.015))))


def pad(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Add 5-25 % transparent margin on each side independently, as a re-layout of the same drawing does."""
    w, h = image.size
    left, right = (int(w * _uniform(rng, 0.05, 0.25)) + 1 for _ in range(2))
    top, bottom = (int(h * _uniform(rng, 0.05, 0.25)) + 1 for _ in range(2))
    canvas = Image.new("RGBA", (w + left + right, h + top + bottom), (0, 0, 0, 0))
    canvas.paste(image, (left, top))
    return canvas


def border(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A solid frame of 2-6 % of the shorter side in a random colour."""
    width = max(1, round(min(image.size) * _uniform(rng, 0.02, 0.06)))
    return ImageOps.expand(image, border=width, fill=_colour(rng) + (255,))


def text(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A short random caption or watermark string drawn somewhere on the image."""
    out = image.copy()
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 .com"
    caption = "".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(4, 14))))
    w, h = out.size
    size = max(8, round(min(w, h) * _uniform(rng, 0.06, 0.14)))
    draw = ImageDraw.Draw(out)
    draw.text(
        (int(rng.integers(0, max(1, w // 2))), int(rng.integers(0, max(1, h - size)))),
        caption,
        fill=_colour(rng) + (255,),
        font_size=size,
    )
    return out


def logo(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small filled ellipse or box (4-12 % of the shorter side) near a corner, like a site's badge."""
    out = image.copy()
    w, h = out.size
    s = max(3, round(min(w, h) * _uniform(rng, 0.04, 0.12)))
    x = (
        int(rng.integers(0, max(1, w // 8)))
        if rng.random() < 0.5
        else max(0, w - s - int(rng.integers(0, max(1, w // 8))))
    )
    y = (
        int(rng.integers(0, max(1, h // 8)))
        if rng.random() < 0.5
        else max(0, h - s - int(rng.integers(0, max(1, h // 8))))
    )
    draw = ImageDraw.Draw(out)
    shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
    shape((x, y, x + s, y + s), fill=_colour(rng) + (255,), outline=_colour(rng) + (255,))
    return out


def perspective(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Move each corner inwards by up to 10 % of the side: a photographed or skewed copy."""
    w, h = image.size
    jitter = rng.uniform(0, 0.1, 8) * np.array([w, h] * 4)
    corners = np.array([0, 0, w, 0, w, h, 0, h], dtype=np.float64)
    inward = np.array([1, 1, -1, 1, -1, -1, 1, -1], dtype=np.float64)
    src = corners + inward * jitter
    coeffs = _perspective_coeffs(corners.reshape(4, 2), src.reshape(4, 2))
    return image.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC, fillcolor=(0, 0, 0, 0))


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """The 8 coefficients mapping output corners `dst` to input corners `src`, as PIL's PERSPECTIVE wants."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), src.reshape(8)))


def flatten(
    image: Image.Image, rng: np.random.Generator, background: tuple[int, int, int] | None = None
) -> Image.Image:
    """Composite the transparency onto a solid colour (random unless given): a transparent PNG saved as an opaque file."""
    colour = _colour(rng) if background is None else background
    canvas = Image.new("RGBA", image.size, colour + (255,))
    return Image.alpha_composite(canvas, image)


TRANSFORMS: dict[str, Transform] = {
    "crop_zoom": crop_zoom,
    "aspect": aspect,
    "rescale": rescale,
    "rotate": rotate,
    "jpeg": jpeg,
    "hsv_jitter": hsv_jitter,
    "hflip": hflip,
    "grayscale": grayscale,
    "gamma": gamma,
    "blur": blur,
    "pad": pad,
    "border": border,
    "text": text,
    "logo": logo,
    "perspective": perspective,
    "flatten": flatten,
}


def augment(
    image: Image.Image,
    rng: np.random.Generator,
    n_ops: tuple[int, int] = (1, 3),
    names: tuple[str, ...] | None = None,
) -> Image.Image:
    """An RGBA near-duplicate of `image`: between n_ops[0] and n_ops[1] distinct transforms in random order."""
    return augment_named(image, rng, n_ops, names)[0]


def augment_named(
    image: Image.Image,
    rng: np.random.Generator,
    n_ops: tuple[int, int] = (1, 3),
    names: tuple[str, ...] | None = None,
) -> tuple[Image.Image, tuple[str, ...]]:
    """augment, plus the names of the transforms it applied in order (the same random draws, so the same copy)."""
    pool = list(TRANSFORMS) if names is None else list(names)
    k = int(rng.integers(n_ops[0], n_ops[1] + 1))
    out = image.convert("RGBA")
    applied = tuple(pool[int(i)] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False))
    for name in applied:
        out = TRANSFORMS[name](out, rng)
    return out, applied
