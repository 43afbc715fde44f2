"""`digits`: scikit-learn's 1,797 real 8x8 handwritten digits (UCI optical digits), bundled with the library, upscaled
(nearest neighbour) to 32x32 greyscale PNGs, white ink on black as in MNIST."""

from __future__ import annotations

import numpy as np

from eval.datasets import EvalSet
from eval.tasks.common import Item, make_splits, png_bytes

SIZE = 32
CLASSNAMES = [str(d) for d in range(10)]
TEMPLATES = [
    'a photo of the number: "{c}".',
    'a handwritten digit "{c}".',
    "the number {c} written by hand.",
    'a pixelated image of the number "{c}".',
    'a low resolution scan of the digit "{c}".',
]


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    grey = np.clip(pixels * 255.0 / 16.0, 0, 255).astype(np.uint8)
    return png_bytes(Image.fromarray(grey, mode="L").resize((SIZE, SIZE), Image.NEAREST))


def build() -> tuple[EvalSet, EvalSet]:
    """(train, test) of every scikit-learn digit, split 70/30 by key hash."""
    from sklearn.datasets import load_digits

    data = load_digits()
    items = [
        Item(f"digit-{i:04d}", str(int(t)), lambda img=img: _png(img))
        for i, (img, t) in enumerate(zip(data.images, data.target, strict=True))
    ]
    return make_splits("digits", items, CLASSNAMES, TEMPLATES, source="sklearn.datasets.load_digits")
