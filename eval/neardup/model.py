"""The near-duplicate embedder: a small CNN (about 0.3 M parameters at width 32) from a square RGB thumbnail to an
L2-normalised vector, plus its preprocessing and typed config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
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
    threads: int = 1  # torch threads: on a shared 2-core machine one thread is ~20x faster than two contending


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Embedder(nn.Module):
    """Four stride-2 3x3 conv blocks, global average and max pooling, a two-layer head to `embed_dim`."""

    def __init__(self, cfg: DetectorConfig):
        super().__init__()
        w = cfg.width
        self.image_size = cfg.image_size
        self.embed_dim = cfg.embed_dim
        self.features = nn.Sequential(
            _block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 2)
        )
        self.head = nn.Sequential(nn.Linear(8 * w, 8 * w), nn.ReLU(inplace=True), nn.Linear(8 * w, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return nn.functional.normalize(self.head(pooled), dim=1)


def thumbnail(image: Image.Image, size: int) -> np.ndarray:
    """uint8 HxWx3 of the image flattened onto white and squashed to size x size (the whole drawing, no crop)."""
    return np.asarray(to_rgb(image).resize((size, size), Image.BILINEAR, reducing_gap=2.0), dtype=np.uint8)


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
