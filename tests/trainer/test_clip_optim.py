"""Optimiser groups (what decays), the paper's Adam settings per family, the warm-up + cosine schedule, clipping."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.models import CLIP
from trainer.optim import (
    PAPER_ADAM,
    WarmupCosine,
    build_optimizer,
    clip_gradients,
    cosine_schedule,
    decays,
    param_groups,
)


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-rn"])
def test_no_decay_on_gains_biases_class_token_and_temperature(name):
    model = CLIP(name)
    groups, counts = param_groups(model, 0.2)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {n: id(p) in decayed for n, p in model.named_parameters()}
    assert groups[0]["weight_decay"] == 0.2 and groups[1]["weight_decay"] == 0.0
    assert not names["logit_scale"]
    for n, is_decayed in names.items():
        if n.endswith(".bias") or ".ln_" in n or n.startswith("ln_") or ".bn" in n or "downsample.1" in n:
            assert not is_decayed, n
    for n in (
        "token_embedding.weight",
        "positional_embedding",
        "text_projection",
        "transformer.resblocks.0.attn.in_proj_weight",
        "transformer.resblocks.0.attn.out_proj.weight",
        "transformer.resblocks.0.mlp.c_fc.weight",
        "visual.conv1.weight",
    ):
        assert names[n], n
    if name == "tiny-vit":
        assert names["visual.proj"] and names["visual.positional_embedding"] and not names["visual.class_embedding"]
    else:
        assert names["visual.attnpool.q_proj.weight"] and not names["visual.attnpool.q_proj.bias"]
        assert names["visual.attnpool.positional_embedding"]
    total = sum(p.numel() for p in model.parameters())
    assert counts["decay_params"] + counts["no_decay_params"] == total
    assert counts["decay_tensors"] == sum(names.values())


def test_frozen_parameters_are_left_out():
    model = CLIP("tiny-vit")
    model.visual.requires_grad_(False)
    groups, _ = param_groups(model, 0.1)
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert decays("x", torch.zeros(2, 2)) and not decays("x", torch.zeros(2))


def test_paper_betas_and_eps_per_family():
    vit = build_optimizer(CLIP("tiny-vit"))
    rn = build_optimizer(CLIP("tiny-rn"))
    assert vit.defaults["betas"] == (0.9, 0.98) and vit.defaults["eps"] == 1e-6
    assert rn.defaults["betas"] == (0.9, 0.999) and rn.defaults["eps"] == 1e-8
    assert vit.param_groups[0]["weight_decay"] == PAPER_ADAM["vit"].weight_decay == 0.2
    custom = build_optimizer(CLIP("tiny-vit"), lr=1e-3, weight_decay=0.05, betas=(0.8, 0.9), eps=1e-7)
    assert custom.defaults["lr"] == 1e-3 and custom.param_groups[0]["weight_decay"] == 0.05
    with pytest.raises(ValueError, match="unknown model family"):
        build_optimizer(torch.nn.Linear(2, 2))


def test_warmup_then_cosine_values():
    f = WarmupCosine(warmup_steps=10, total_steps=110)
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5)  # half way through the cosine
    assert f(35) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert f(110) == pytest.approx(0.0, abs=1e-12) and f(500) == pytest.approx(0.0, abs=1e-12)
    assert WarmupCosine(0, 100, min_ratio=0.1)(100) == pytest.approx(0.1)


def test_scheduler_drives_the_optimiser_and_resumes_from_its_state():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = cosine_schedule(opt, warmup_steps=4, total_steps=20)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[4] == pytest.approx(1e-3) and lrs[7] < lrs[4]
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched2 = cosine_schedule(opt2, warmup_steps=1, total_steps=2)
    sched2.load_state_dict(sched.state_dict())
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])


def test_gradient_clipping_returns_the_norm_and_clips():
    model = torch.nn.Linear(3, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 4.0, 0.0]])
    assert clip_gradients(model, None) == pytest.approx(5.0)
    assert torch.equal(model.weight.grad, torch.tensor([[3.0, 4.0, 0.0]]))
    assert clip_gradients(model, 1.0) == pytest.approx(5.0)
    assert model.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
