"""The CLIP model: an image tower (`visual`), the text tower's parts at the top level, and a learned temperature
(`logit_scale`, initialised to log(1/0.07) and clipped so logits are never scaled by more than 100, Radford et al.
2021, section 2.5). The state dict is OpenAI's layout, so OpenAI and OpenCLIP checkpoints load with strict=True."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config import ModelConfig, get_config
from trainer.models.resnet import ModifiedResNet
from trainer.models.text import TextTransformer, encode_text
from trainer.models.vit import VisionTransformer

INIT_LOGIT_SCALE = math.log(1 / 0.07)


def _float32_at_most(value: float) -> float:
    """The largest float32 not above `value`: the clamp bound must be exactly representable in the parameter's dtype,
    or a parameter clamped to float32(log 100) (which rounds up) would sit above the bound with no gradient."""
    t = torch.tensor(value, dtype=torch.float32)
    if t.item() > value:
        t = torch.nextafter(t, torch.tensor(0.0))
    return t.item()


MAX_LOGIT_SCALE = _float32_at_most(math.log(100))  # exp(MAX_LOGIT_SCALE) = 99.99996 <= 100

# Non-tensor entries OpenAI's released checkpoints carry next to the weights.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


def build_visual(config: ModelConfig) -> nn.Module:
    v = config.vision
    if v.is_resnet:
        return ModifiedResNet(v.layers, config.embed_dim, v.heads, v.image_size, v.width)
    return VisionTransformer(
        v.image_size, v.patch_size, v.width, v.layers, v.heads, config.embed_dim, v.mlp_ratio, config.quick_gelu
    )


class CLIP(nn.Module):
    """forward(images, tokens) -> (image features, text features, exp(clamped logit scale)), features L2-normalised,
    as OpenCLIP's model returns them for its loss."""

    objective = "contrastive"  # trainer.objectives: what it is trained with

    def __init__(self, config: ModelConfig | str):
        super().__init__()
        config = get_config(config) if isinstance(config, str) else config
        self.config = config
        t = config.text
        self.visual = build_visual(config)
        text = TextTransformer(
            t.width, t.layers, t.heads, config.embed_dim, t.context_length, t.vocab_size, t.mlp_ratio, config.quick_gelu
        )
        self.token_embedding = text.token_embedding
        self.positional_embedding = text.positional_embedding
        self.transformer = text.transformer
        self.ln_final = text.ln_final
        self.text_projection = text.text_projection
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))

    @property
    def context_length(self) -> int:
        return self.positional_embedding.shape[0]

    @property
    def image_size(self) -> int:
        return self.visual.image_size

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward (both towers) to trade compute for memory."""
        self.visual.set_grad_checkpointing(enable)
        self.transformer.grad_checkpointing = enable

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.visual(images)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = encode_text(self, tokens)
        return F.normalize(x, dim=-1) if normalize else x

    def logit_scale_exp(self) -> torch.Tensor:
        """The multiplier of the cosine similarities: exp(logit_scale), never above 100. The gradient passes up to
        and at the bound (torch.clamp gives none at the bound itself, where `clamp_logit_scale_` puts the parameter)."""
        s = self.logit_scale
        return torch.where(s > MAX_LOGIT_SCALE, torch.full_like(s, MAX_LOGIT_SCALE), s).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clip the parameter itself into [0, log 100]; call after each optimiser step so it cannot drift where the
        clamped forward gives it no gradient."""
        self.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        return (
            self.encode_image(images, normalize=True),
            self.encode_text(tokens, normalize=True),
            self.logit_scale_exp(),
        )

    def logits(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits per image [images, texts], logits per text [texts, images])."""
        image_features, text_features, scale = self(images, tokens)
        per_image = scale * image_features @ text_features.T
        return per_image, per_image.T


def openai_state_dict(state_dict: dict) -> dict:
    """A checkpoint's tensors without the non-tensor entries OpenAI's files add, and without a `module.` prefix."""
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key not in _OPENAI_EXTRA_KEYS:
            out[key] = value
    return out
