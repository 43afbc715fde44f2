"""The pieces together, no Ray: tokenizer -> model -> loss -> AdamW + schedule learns a fixed batch on a CPU."""

from __future__ import annotations

import pytest
import torch

from trainer.loss import ClipLoss
from trainer.models import CLIP
from trainer.optim import build_optimizer, clip_gradients, cosine_schedule
from trainer.tokenizer import ClipTokenizer

CAPTIONS = [
    "a red circle",
    "a blue square",
    "a green triangle",
    "a yellow star",
    "two black cats",
    "a white house",
    "an orange fish",
    "a purple flower",
]


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-rn"])
def test_a_few_steps_learn_a_fixed_batch(name):
    torch.manual_seed(0)
    model = CLIP(name).train()
    images = torch.randn(len(CAPTIONS), 3, 64, 64)
    tokens = ClipTokenizer.openai()(CAPTIONS)
    optimizer = build_optimizer(model, lr=1e-3)
    schedule = cosine_schedule(optimizer, warmup_steps=2, total_steps=25)
    loss_fn = ClipLoss()
    losses = []
    for _ in range(25):
        loss = loss_fn(*model(images, tokens))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, 1.0)
        optimizer.step()
        schedule.step()
        model.clamp_logit_scale_()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    # 25 steps leave the ResNet's BN running statistics unsettled: score it with batch statistics
    model.train(model.config.vision.is_resnet)
    with torch.no_grad():
        per_image, _ = model.logits(images, tokens)
    assert (per_image.argmax(dim=1) == torch.arange(len(CAPTIONS))).float().mean() >= 0.75
