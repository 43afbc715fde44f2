"""One CLIP training step as a pure function of its inputs, and the precision policy.

Precision (`Precision.choose`): fp32 on CPU by default (these CPUs have no native bf16, where a bf16 step runs ~40x
slower); bf16 autocast on CUDA devices that support it; fp16 autocast with a GradScaler on other GPUs. The master
weights and the optimiser stay fp32 in every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """The resolved precision: autocast dtype (None = fp32) and whether a GradScaler is needed (fp16)."""

    name: str
    dtype: torch.dtype | None
    device_type: str

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    @staticmethod
    def choose(requested: str, device: torch.device) -> Precision:
        """'auto': fp32 on CPU, bf16 on CUDA with bf16 support, else fp16; an explicit choice is honoured (fp16 on
        CPU is refused: autocast there has no fp16 matmul worth using)."""
        if requested not in PRECISIONS:
            raise ValueError(f"unknown precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
        kind = device.type
        if requested == "auto":
            if kind != "cuda":
                requested = "fp32"
            else:
                requested = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if requested == "fp16" and kind != "cuda":
            raise ValueError("fp16 needs a CUDA device (a GradScaler on CPU buys nothing): use fp32 or bf16")
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]
        return Precision(requested, dtype, kind)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.needs_scaler else None


def _unwrap(model: nn.Module) -> nn.Module:
    """The CLIP module inside DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def train_step(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn,
    *,
    precision: Precision | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
) -> dict[str, float]:
    """Forward, loss, backward, (clip), optimiser and scheduler step, logit-scale clamp (contrastive models).

    `batch` holds "images" [B, 3, S, S] and "tokens" [B, ctx] on the model's device; the loss is
    `loss_fn(*model(images, tokens))` (trainer.objectives.build_loss). Returns this worker's metrics: loss (for the
    contrastive loss: this worker's rows against the global batch; their mean over workers is the global loss), lr
    (before the scheduler step: the rate this step used), logit_scale (exp of the clamped temperature after the step;
    only for a model that has one) and grad_norm (before clipping, when clipping is on)."""
    precision = precision or Precision("fp32", None, batch["images"].device.type)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    lr = optimizer.param_groups[0]["lr"]
    with precision.autocast():
        outputs = model(batch["images"], batch["tokens"])
        loss = loss_fn(*(o.float() if o.is_floating_point() else o for o in outputs))
    metrics: dict[str, float] = {}
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip).item()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip).item()
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    inner = _unwrap(model)
    metrics.update(loss=loss.item(), lr=lr)
    if hasattr(inner, "clamp_logit_scale_"):
        inner.clamp_logit_scale_()  # the paper's clip: exp(t) never above 100 (the model keeps the forward clamped)
        metrics["logit_scale"] = inner.logit_scale.exp().item()
    return metrics
