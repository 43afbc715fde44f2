"""trainer.loop.train_step on a real tiny CLIP: metrics, determinism, the logit-scale clamp, clipping, precision."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.loop import Precision, train_step
from trainer.loss import ClipLoss
from trainer.models import CLIP
from trainer.models.clip import MAX_LOGIT_SCALE
from trainer.optim import build_optimizer, cosine_schedule


def setup(seed=0):
    torch.manual_seed(seed)
    model = CLIP("tiny-vit")
    opt = build_optimizer(model, lr=1e-3)
    sched = cosine_schedule(opt, warmup_steps=2, total_steps=10)
    g = torch.Generator().manual_seed(1)
    batch = {"images": torch.randn(4, 3, 64, 64, generator=g), "tokens": torch.randint(1, 49000, (4, 77), generator=g)}
    batch["tokens"][:, 10] = 49407  # EOT
    batch["tokens"][:, 11:] = 0
    return model, opt, sched, batch


def test_step_returns_metrics_and_is_a_pure_function_of_its_inputs():
    runs = []
    for _ in range(2):
        model, opt, sched, batch = setup()
        runs.append([train_step(model, batch, opt, sched, ClipLoss()) for _ in range(3)])
    assert runs[0] == runs[1]
    first = runs[0][0]
    assert set(first) == {"loss", "lr", "logit_scale"}
    assert first["lr"] == pytest.approx(1e-3 / 2)  # the rate step 1 used (warm-up 1 of 2)
    assert runs[0][1]["lr"] == pytest.approx(1e-3)
    assert first["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-2)
    before = {k: v.clone() for k, v in setup()[0].state_dict().items()}
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # the step moved the weights
    assert math.isfinite(first["loss"])


def test_logit_scale_is_clamped_after_the_step():
    model, opt, sched, batch = setup()
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) ~ 22,000: far above 100
    out = train_step(model, batch, opt, sched, ClipLoss())
    assert model.logit_scale.item() <= MAX_LOGIT_SCALE and out["logit_scale"] <= 100.0


def test_wrapped_models_are_clamped_too():
    from trainer.loop import _unwrap

    model, opt, sched, batch = setup()
    wrapped = torch.nn.Module()
    wrapped.module = model  # as DDP holds it
    assert _unwrap(wrapped) is model and _unwrap(model) is model


def test_gradient_clipping_reports_the_norm_and_bounds_the_update():
    model, opt, sched, batch = setup()
    out = train_step(model, batch, opt, None, ClipLoss(), grad_clip=1e-3)
    assert out["grad_norm"] > 1e-3
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_precision_policy():
    cpu = torch.device("cpu")
    assert Precision.choose("auto", cpu).dtype is None  # fp32 on CPU: no native bf16 here
    assert Precision.choose("bf16", cpu).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Precision.choose("fp16", cpu)
    with pytest.raises(ValueError, match="unknown precision"):
        Precision.choose("fp8", cpu)
    assert Precision.choose("fp32", cpu).scaler() is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_autocast_step():
    model, opt, sched, batch = setup()
    model = model.cuda()
    opt = build_optimizer(model, lr=1e-3)
    batch = {k: v.cuda() for k, v in batch.items()}
    precision = Precision.choose("auto", torch.device("cuda"))
    out = train_step(model, batch, opt, None, ClipLoss(), precision=precision, scaler=precision.scaler())
    assert math.isfinite(out["loss"]) and model.logit_scale.dtype == torch.float32
