"""Model config registry: the paper's CLIP models (Radford et al. 2021, section 2.4 and table 19/20) and small ones.

Names follow OpenAI's release (`ViT-B/32`, `ViT-L/14@336px`); OpenCLIP's spellings (`ViT-B-32`, `ViT-L-14-336`) are
accepted as aliases. `ModelConfig.to_open_clip()` gives the matching OpenCLIP config dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class VisionConfig:
    """Image tower: a ViT when `patch_size` is set, else the modified ResNet with `layers` blocks per stage."""

    image_size: int
    width: int
    layers: int | tuple[int, int, int, int]
    patch_size: int | None = None
    head_width: int = 64  # attention heads = width // 64 (ViT), width * 32 // 64 (ResNet attention pool)
    mlp_ratio: float = 4.0

    @property
    def is_resnet(self) -> bool:
        return self.patch_size is None

    @property
    def heads(self) -> int:
        return (self.width * 32 if self.is_resnet else self.width) // self.head_width


@dataclass(frozen=True)
class TextConfig:
    """Text tower: a causal transformer over `context_length` BPE tokens, features at the end-of-text token."""

    width: int = 512
    heads: int = 8
    layers: int = 12
    context_length: int = 77
    vocab_size: int = 49408
    mlp_ratio: float = 4.0


@dataclass(frozen=True)
class ModelConfig:
    """A CLIP model: both towers, the joint embedding width, and the MLP activation (OpenAI's weights use QuickGELU)."""

    name: str
    embed_dim: int
    vision: VisionConfig
    text: TextConfig
    quick_gelu: bool = True

    @property
    def family(self) -> str:
        """'resnet' or 'vit': selects the paper's Adam betas/eps (trainer.optim)."""
        return "resnet" if self.vision.is_resnet else "vit"

    def to_open_clip(self) -> dict:
        """The same architecture as an OpenCLIP model config dict (for `open_clip` tests and benchmarks)."""
        v, t = self.vision, self.text
        vision_cfg = {
            "image_size": v.image_size,
            "layers": list(v.layers) if v.is_resnet else v.layers,
            "width": v.width,
            "patch_size": v.patch_size,
            "head_width": v.head_width,
            "mlp_ratio": v.mlp_ratio,
        }
        text_cfg = {
            "context_length": t.context_length,
            "vocab_size": t.vocab_size,
            "width": t.width,
            "heads": t.heads,
            "layers": t.layers,
            "mlp_ratio": t.mlp_ratio,
        }
        return {
            "embed_dim": self.embed_dim,
            "quick_gelu": self.quick_gelu,
            "vision_cfg": vision_cfg,
            "text_cfg": text_cfg,
        }

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _rn(name, embed, layers, width, size, text_width, text_heads):
    return ModelConfig(name, embed, VisionConfig(size, width, layers), TextConfig(text_width, text_heads, 12))


def _vit(name, embed, layers, width, patch, size, text_width, text_heads):
    return ModelConfig(name, embed, VisionConfig(size, width, layers, patch), TextConfig(text_width, text_heads, 12))


_PAPER = [
    _rn("RN50", 1024, (3, 4, 6, 3), 64, 224, 512, 8),
    _rn("RN101", 512, (3, 4, 23, 3), 64, 224, 512, 8),
    _rn("RN50x4", 640, (4, 6, 10, 6), 80, 288, 640, 10),
    _rn("RN50x16", 768, (6, 8, 18, 8), 96, 384, 768, 12),
    _rn("RN50x64", 1024, (3, 15, 36, 10), 128, 448, 1024, 16),
    _vit("ViT-B/32", 512, 12, 768, 32, 224, 512, 8),
    _vit("ViT-B/16", 512, 12, 768, 16, 224, 512, 8),
    _vit("ViT-L/14", 768, 24, 1024, 14, 224, 768, 12),
    _vit("ViT-L/14@336px", 768, 24, 1024, 14, 336, 768, 12),
]

# Small models that train on a CPU in minutes (64 px images, OpenAI's 49,408-token vocabulary, 77-token context).
_SMALL = [
    ModelConfig("tiny-vit", 128, VisionConfig(64, 128, 4, patch_size=8), TextConfig(128, 2, 4), quick_gelu=False),
    ModelConfig("tiny-rn", 128, VisionConfig(64, 32, (1, 1, 1, 1)), TextConfig(128, 2, 4), quick_gelu=False),
    ModelConfig("small-vit", 256, VisionConfig(64, 256, 6, patch_size=8), TextConfig(256, 4, 6), quick_gelu=False),
]


def _width(w: int) -> ModelConfig:
    """A tiny-vit-shaped model whose towers are both `w` wide (one attention head per 32), for `wit study scaling`."""
    vision = VisionConfig(64, w, 4, patch_size=8, head_width=32)
    return ModelConfig(f"tiny-vit-w{w}", 128, vision, TextConfig(w, w // 32, 4), quick_gelu=False)


# The compute-scaling widths (`wit study scaling`): same depth, patch, context and embedding, width varied.
_SMALL += [_width(w) for w in (32, 64, 128)]

MODELS: dict[str, ModelConfig] = {c.name: c for c in _PAPER + _SMALL}
_ALIASES = {"ViT-B-32": "ViT-B/32", "ViT-B-16": "ViT-B/16", "ViT-L-14": "ViT-L/14", "ViT-L-14-336": "ViT-L/14@336px"}


class UnknownModel(ValueError):
    """A model name the registry does not hold."""


def get_config(name: str) -> ModelConfig:
    """The registered config called `name` (or an OpenCLIP alias); a one-line error lists the known names."""
    key = _ALIASES.get(name, name)
    if key not in MODELS:
        raise UnknownModel(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[key]
