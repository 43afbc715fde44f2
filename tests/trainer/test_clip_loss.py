"""The contrastive loss: single-process values against a direct N x N computation, and the distributed loss over 2
real processes (gloo on loopback) against the single-process full-batch loss and gradients, with and without DDP."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from ports import free_port

from trainer.loss import ClipLoss, clip_loss

WORLD, LOCAL, DIM = 2, 3, 8


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(WORLD * LOCAL, DIM, generator=g), dim=-1)
    texts = F.normalize(torch.randn(WORLD * LOCAL, DIM, generator=g), dim=-1)
    return images, texts, torch.tensor(math.log(1 / 0.07))


class _Towers(torch.nn.Module):
    """Two linear 'towers' and a temperature: enough to check DDP's parameter gradients."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.image = torch.nn.Linear(DIM, DIM)
        self.text = torch.nn.Linear(DIM, DIM)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, x, y):
        return F.normalize(self.image(x), dim=-1), F.normalize(self.text(y), dim=-1), self.logit_scale.exp()


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        images, texts, scale = _features()
        image, text = images[rows].clone().requires_grad_(), texts[rows].clone().requires_grad_()
        scale = scale.clone().requires_grad_()
        loss = ClipLoss()(image, text, scale.exp())
        loss.backward()
        model = torch.nn.parallel.DistributedDataParallel(_Towers())
        x, y, _ = _features(seed=5)
        model_loss = clip_loss(*model(x[rows], y[rows]))
        model_loss.backward()
        torch.save(
            {
                "loss": loss.detach(),
                "image": image.grad,
                "text": text.grad,
                "scale": scale.grad,
                "model_loss": model_loss.detach(),
                "params": {n: p.grad for n, p in model.module.named_parameters()},
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        torch.distributed.destroy_process_group()


def _reference_loss(images, texts, scale):
    logits = scale * images @ texts.T
    labels = torch.arange(images.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def test_single_process_loss_is_the_symmetric_cross_entropy():
    images, texts, scale = _features()
    expected = _reference_loss(images, texts, scale.exp())
    torch.testing.assert_close(clip_loss(images, texts, scale.exp()), expected)
    # perfectly aligned pairs at the maximum scale: near-zero loss; shuffled texts: high loss
    assert clip_loss(images, images, torch.tensor(100.0)) < 0.05
    assert clip_loss(images, texts.roll(1, 0), torch.tensor(100.0)) > clip_loss(images, texts, torch.tensor(100.0))


def test_distributed_loss_over_two_processes_equals_the_full_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    images, texts, scale = _features()
    images.requires_grad_(), texts.requires_grad_(), scale.requires_grad_()
    full = _reference_loss(images, texts, scale.exp())
    full.backward()
    # the workers' mean loss is the full-batch loss
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / WORLD, full.detach())
    # feature gradients: each worker's rows get world_size times their full-batch gradient (DDP then averages)
    torch.testing.assert_close(torch.cat([r["image"] for r in ranks]) / WORLD, images.grad)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]) / WORLD, texts.grad)
    # the replicated temperature: the average of the workers' gradients (what DDP applies)
    torch.testing.assert_close(sum(r["scale"] for r in ranks) / WORLD, scale.grad)

    # through DDP: every worker's parameter gradients equal the single-process full-batch gradients
    model = _Towers()
    x, y, _ = _features(seed=5)
    model_loss = clip_loss(*model(x, y))
    model_loss.backward()
    torch.testing.assert_close(sum(r["model_loss"] for r in ranks) / WORLD, model_loss.detach())
    for name, param in model.named_parameters():
        for r in ranks:
            torch.testing.assert_close(r["params"][name], param.grad, msg=name)


@pytest.mark.parametrize("scale", [1.0, 14.28, 100.0])
def test_loss_matches_open_clip(scale):
    open_clip_loss = pytest.importorskip("open_clip.loss")
    images, texts, _ = _features(seed=3)
    theirs = open_clip_loss.ClipLoss()(images, texts, torch.tensor(scale))
    torch.testing.assert_close(clip_loss(images, texts, torch.tensor(scale)), theirs)
