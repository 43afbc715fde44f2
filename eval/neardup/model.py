"""The near-duplicate embedder: a small CNN (about 0.3 M parameters at width 32) from a square RGB thumbnail to an
L2-normalised vector, plus its preprocessing and typed config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from eval.neardup.images import to_rgb


@dataclass
class DetectorConfig:
    """Architecture and training settings; the defaults train on ~1,000 clip-art images on 2 CPU cores in minutes."""

    image_size: int = 64
    width: int = 32
    embed_dim: int = 128
    temperature: float = 0.1
    steps: int = 400
    batch: int = 96
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    n_ops: tuple[int, int] = (1, 3)
    hard_fraction: float = 0.5  # share of each batch made of nearest-neighbour clusters (in-batch hard negatives)
    cluster: int = 8  # images per nearest-neighbour cluster
    mine_every: int = 100  # steps between re-embedding the training images to find the neighbours
    gray: bool = False  # embed luminance only: grayscale and hue-shifted copies look alike from the start
    threads: int = 1  # torch threads: on a shared 2-core machine one thread is ~20x faster than two contending


LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 weights, as PIL's convert("L")


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Embedder(nn.Module):
    """Four stride-2 3x3 conv blocks, global average and max pooling, a two-layer head to `embed_dim`."""

    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        w = cfg.width
        self.image_size = cfg.image_size
        self.embed_dim = cfg.embed_dim
        self.gray = cfg.gray
        self.features = nn.Sequential(
            _block(1 if cfg.gray else 3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2)
        )
        self.head = nn.Sequential(nn.Linear(8 * w, 8 * w), nn.ReLU(inplace=True), nn.Linear(8 * w, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gray:
            x = (x * LUMA.to(x.dtype)).sum(dim=1, keepdim=True)
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return nn.functional.normalize(self.head(pooled), dim=1)


def thumbnail(image: Image.Image, size: int) -> np.ndarray:
    """uint8 HxWx3 of the image flattened onto white and squashed to size x size (the whole drawing, no crop), with a
    solid background colour or frame turned white (see whiten_background)."""
    rgb = np.asarray(to_rgb(image).resize((size, size), Image.BILINEAR, reducing_gap=2.0), dtype=np.uint8)
    return whiten_background(rgb)


def whiten_background(rgb: np.ndarray, tol: int = 24, share: float = 0.6) -> np.ndarray:
    """A drawing flattened onto a solid colour or framed made to look like the transparent original: a solid edge
    colour (see whiten_edge) becomes white, then once more inside the box of what is not white (a coloured
    rectangle inside a transparent margin). Other images come back unchanged."""
    out = whiten_edge(rgb, tol, share)
    ink = (out < 255 - tol).any(axis=2)
    if not ink.any():
        return out
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    y0, y1, x0, x1 = rows[0] + 1, rows[-1], cols[0] + 1, cols[-1]  # one pixel in: the box's rim is anti-aliased
    if min(y1 - y0, x1 - x0) >= 3 and (rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) != ink.shape:
        out = out.copy()
        out[y0:y1, x0:x1] = whiten_edge(out[y0:y1, x0:x1], tol, share)
    return out


def whiten_edge(rgb: np.ndarray, tol: int = 24, share: float = 0.6) -> np.ndarray:
    """When at least `share` of the outermost pixel ring lies within `tol` of its median colour (and that is not
    already near white), the pixels of that colour connected to the edge become white."""
    ring = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]]).astype(np.int16)
    colour = np.median(ring, axis=0)
    if (colour >= 255 - tol).all() or (np.abs(ring - colour).max(axis=1) <= tol).mean() < share:
        return rgb
    labels, _ = ndimage.label(np.abs(rgb.astype(np.int16) - colour).max(axis=2) <= tol)
    touches = np.zeros(labels.max() + 1, dtype=bool)
    touches[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    touches[0] = False
    out = rgb.copy()
    out[touches[labels]] = 255
    return out


def to_tensor(thumbs: np.ndarray) -> torch.Tensor:
    """N x size x size x 3 uint8 -> N x 3 x size x size float in [-1, 1]."""
    return torch.from_numpy(thumbs).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def n_params(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
