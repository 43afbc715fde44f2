"""CLIP's contrastive loss (Radford et al. 2021, section 2.3 and figure 3): symmetric cross-entropy over the cosine
similarities of every image with every text in the batch, scaled by the learned temperature.

Distributed, each worker gathers all workers' features (the gather passes gradients back to their owners) and scores
only its own rows against the global batch: memory O(b * N) per worker, not O(N^2). Each worker's loss is the mean
over its rows; their average over workers is the full-batch loss, and since DDP averages gradients, the parameter
gradients equal the full batch's (each worker's feature gradients are world_size times their full-batch share).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0 whose backward sums every worker's gradient of the gathered tensor and returns this
    worker's slice (an all-reduce works on every backend; NCCL does it as one reduce-scatter)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        ctx.world = dist.get_world_size(group)
        out = [torch.empty_like(x) for _ in range(ctx.world)]
        dist.all_gather(out, x.contiguous(), group=group)
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        if dist.get_backend(ctx.group) == dist.Backend.NCCL:
            local = torch.empty(grad.shape[0] // ctx.world, *grad.shape[1:], dtype=grad.dtype, device=grad.device)
            dist.reduce_scatter_tensor(local, grad, group=ctx.group)
            return local, None
        dist.all_reduce(grad, group=ctx.group)
        return grad.chunk(ctx.world, dim=0)[ctx.rank], None


def gather_features(x: torch.Tensor, group=None) -> torch.Tensor:
    """Every worker's `x` concatenated in rank order, with gradients flowing back to each owner."""
    return _GatherWithGrad.apply(x, group)


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, group=None
) -> torch.Tensor:
    """Mean of the image->text and text->image cross-entropies for this worker's rows; features L2-normalised,
    `logit_scale` the multiplier exp(t) (already clamped). Without an initialised process group: the plain full-batch
    loss. Every worker must hold the same local batch size (its rows' labels are offset by rank * batch)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1:
        rank = dist.get_rank(group)
        all_images = gather_features(image_features, group)
        all_texts = gather_features(text_features, group)
    else:
        rank, all_images, all_texts = 0, image_features, text_features
    b = image_features.shape[0]
    labels = torch.arange(rank * b, rank * b + b, device=image_features.device)
    logits_per_image = logit_scale * image_features @ all_texts.T  # [b, N]
    logits_per_text = logit_scale * text_features @ all_images.T  # [b, N]
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


class ClipLoss(nn.Module):
    """`clip_loss` as a module: loss = ClipLoss()(image_features, text_features, logit_scale)."""

    def __init__(self, group=None):
        super().__init__()
        self.group = group

    def forward(self, image_features, text_features, logit_scale):
        return clip_loss(image_features, text_features, logit_scale, self.group)
