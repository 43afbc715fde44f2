"""Our models against OpenCLIP's (random weights, offline): OpenCLIP weights load into ours with strict=True and give
the same features and logits, ours load back into OpenCLIP, and every paper config has OpenCLIP's keys and shapes."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from trainer.config import MODELS, get_config
from trainer.models import CLIP

TOL = dict(rtol=1e-5, atol=1e-5)

# Our paper names -> OpenCLIP's config of the same architecture with OpenAI's QuickGELU.
OPEN_CLIP_NAMES = {
    "RN50": "RN50-quickgelu",
    "RN101": "RN101-quickgelu",
    "RN50x4": "RN50x4-quickgelu",
    "RN50x16": "RN50x16-quickgelu",
    "RN50x64": "RN50x64-quickgelu",
    "ViT-B/32": "ViT-B-32-quickgelu",
    "ViT-B/16": "ViT-B-16-quickgelu",
    "ViT-L/14": "ViT-L-14-quickgelu",
    "ViT-L/14@336px": "ViT-L-14-336-quickgelu",
}


def _register(config, tmp_path) -> str:
    """Register `config` with OpenCLIP under a new name (its config loader reads JSON files named after the model)."""
    name = "wit-" + config.name.replace("/", "-") + ("-qg" if config.quick_gelu else "")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config.to_open_clip()))
    open_clip.add_model_config(path)
    return name


def _inputs(config, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    size, ctx, vocab = config.vision.image_size, config.text.context_length, config.text.vocab_size
    images = torch.randn(batch, 3, size, size, generator=g)
    tokens = torch.zeros(batch, ctx, dtype=torch.long)
    for i, length in enumerate([1, 5, ctx - 2, 12][:batch]):  # [SOT] words [EOT], zero padding after
        tokens[i, 0] = vocab - 2
        tokens[i, 1 : length + 1] = torch.randint(0, vocab - 2, (length,), generator=g)
        tokens[i, length + 1] = vocab - 1
    return images, tokens


def _randomise(model, seed=1):
    """Non-trivial weights everywhere (OpenAI's init zeroes every block's last BN gain) and BN running statistics;
    non-persistent buffers (OpenCLIP's causal mask) stay as they are."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif name.endswith("logit_scale"):
                tensor.fill_(2.5)
            else:
                tensor.copy_(
                    torch.randn(tensor.shape, generator=g) * 0.05
                    + (1.0 if "bn" in name and name.endswith("weight") else 0.0)
                )
    return model


def _same_outputs(ours, theirs, config, train=False):
    ours.train(train)
    theirs.train(train)
    images, tokens = _inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), theirs.encode_image(images), **TOL)
        torch.testing.assert_close(ours.encode_text(tokens), theirs.encode_text(tokens), **TOL)
        ours_logits, _ = ours.logits(images, tokens)
        their_logits, _ = theirs.get_logits(images, tokens)
        torch.testing.assert_close(ours_logits, their_logits, **TOL)


SMALL = [get_config("tiny-vit"), get_config("tiny-rn").replace(quick_gelu=True)]


@pytest.mark.parametrize("config", SMALL, ids=lambda c: c.name)
def test_open_clip_weights_load_into_ours_with_identical_outputs(config, tmp_path):
    torch.manual_seed(0)
    theirs = _randomise(open_clip.create_model(_register(config, tmp_path), pretrained=None))
    ours = CLIP(config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    _same_outputs(ours, theirs, config)
    if config.vision.is_resnet:  # batch norm on batch statistics
        _same_outputs(ours, theirs, config, train=True)


@pytest.mark.parametrize("config", SMALL, ids=lambda c: c.name)
def test_ours_export_into_open_clip_with_identical_outputs(config, tmp_path):
    torch.manual_seed(0)
    ours = _randomise(CLIP(config), seed=2)
    theirs = open_clip.create_model(_register(config, tmp_path), pretrained=None)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    _same_outputs(ours, theirs, config)


@pytest.mark.parametrize("config", SMALL, ids=lambda c: c.name)
def test_gradients_match_open_clip(config, tmp_path):
    """One training step's gradients agree, so training ours is training OpenCLIP's architecture."""
    theirs = _randomise(open_clip.create_model(_register(config, tmp_path), pretrained=None))
    ours = CLIP(config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    images, tokens = _inputs(config)
    for model in (ours, theirs):
        model.train()
        image_features, text_features, scale = model(images, tokens)
        (scale * image_features @ text_features.T).logsumexp(dim=1).mean().backward()
    their_grads = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        expected = their_grads[name].grad
        # float32 sums in another order differ by ~1e-6 of the tensor's scale: one conv1 element of 432 (gradients up
        # to 12) was 2e-5 apart on an AMD EPYC, so the absolute tolerance scales with the largest gradient
        atol = 1e-5 * max(1.0, expected.abs().max().item())
        torch.testing.assert_close(param.grad, expected, rtol=1e-4, atol=atol, msg=name)


@pytest.mark.parametrize("name", sorted(OPEN_CLIP_NAMES))
def test_paper_configs_have_open_clip_keys_shapes_and_heads(name):
    config = MODELS[name]
    their_cfg = open_clip.get_model_config(OPEN_CLIP_NAMES[name])
    assert their_cfg["text_cfg"]["heads"] == config.text.heads
    assert their_cfg.get("quick_gelu") is True and config.quick_gelu
    with torch.device("meta"):
        ours = CLIP(config).state_dict()
        theirs = open_clip.create_model(OPEN_CLIP_NAMES[name], pretrained=None, device="meta").state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_paper_parameter_counts():
    """RN50 and ViT-B/32 have the parameter counts of OpenAI's released models."""
    with torch.device("meta"):
        counts = {n: sum(p.numel() for p in CLIP(n).parameters()) for n in ("RN50", "ViT-B/32", "ViT-L/14")}
    assert counts == {"RN50": 102_007_137, "ViT-B/32": 151_277_313, "ViT-L/14": 427_616_513}
