"""CLIP's modified ResNet (Radford et al. 2021, section 2.4): a 3-convolution stem with an average pool, anti-aliased
strided blocks (an average pool before every stride-2 step, He et al. 2019 / Zhang 2019), and attention pooling whose
query is the mean of the final feature map. State-dict keys match OpenAI's `visual.*` layout."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

_recomputing = threading.local()


@contextlib.contextmanager
def _recompute_context():
    """Marks gradient-checkpoint recomputation so batch norm does not update its running statistics twice."""
    before = getattr(_recomputing, "on", False)
    _recomputing.on = True
    try:
        yield
    finally:
        _recomputing.on = before


def _checkpoint_contexts():
    return contextlib.nullcontext(), _recompute_context()


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d that, while a checkpointed block is recomputed, leaves the running statistics alone (the forward
    pass already updated them once): the same kernel runs on throwaway copies, so it saves the same tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and getattr(_recomputing, "on", False):
            return F.batch_norm(
                x, self.running_mean.clone(), self.running_var.clone(), self.weight, self.bias, True, 0.1, self.eps
            )
        return super().forward(x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> (avgpool if strided) -> 1x1 residual block; the shortcut is avgpool -> 1x1 conv -> BN."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != out:
            # the pool ("-1") has no parameters: the keys stay downsample.0 / downsample.1, as OpenAI's
            pool, conv, bn = nn.AvgPool2d(stride), nn.Conv2d(inplanes, out, 1, stride=1, bias=False), BatchNorm2d(out)
            self.downsample = nn.Sequential(OrderedDict([("-1", pool), ("0", conv), ("1", bn)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self.avgpool(y)))
        return self.relu(y + identity)


class AttentionPool2d(nn.Module):
    """Single-query multi-head attention over the flattened feature map: the query is the mean token (plus its
    position), keys and values are the mean token and every position. Keys q_proj, k_proj, v_proj, c_proj."""

    def __init__(self, spatial: int, embed_dim: int, heads: int, output_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial * spatial + 1, embed_dim) / embed_dim**0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # [batch, h * w, channels]
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.positional_embedding.to(x.dtype)
        b, n, d = x.shape
        hd = d // self.heads
        q = self.q_proj(x[:, :1]).view(b, 1, self.heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.heads, hd).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # [batch, heads, 1, hd]
        return self.c_proj(out.reshape(b, d))


class ModifiedResNet(nn.Module):
    """The modified ResNet image tower; `width` is the stem width (64 for RN50), features are width * 32 wide."""

    def __init__(
        self, layers: tuple[int, int, int, int], output_dim: int, heads: int, image_size: int = 224, width: int = 64
    ):
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image size {image_size} is not a multiple of 32 (the ResNet's total stride)")
        self.image_size, self.output_dim = image_size, output_dim
        self.grad_checkpointing = False
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        self._inplanes = width
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim)
        self.init_parameters()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_parameters(self) -> None:
        """OpenAI's initialisation: attention-pool projections ~ N(0, 1/d), the last BN gain of each block zero."""
        std = self.attnpool.c_proj.in_features**-0.5
        for proj in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(proj.weight, std=std)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for name, param in stage.named_parameters():
                if name.endswith("bn3.weight"):
                    nn.init.zeros_(param)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x.to(self.conv1.weight.dtype))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                if self.grad_checkpointing and torch.is_grad_enabled():
                    x = checkpoint(block, x, use_reentrant=False, context_fn=_checkpoint_contexts)
                else:
                    x = block(x)
        return self.attnpool(x)
