"""Our CLIP model on its own: the logit-scale clamp, gradient checkpointing, the config registry and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.config import MODELS, UnknownModel, get_config
from trainer.models import CLIP
from trainer.models.clip import openai_state_dict


def _batch(config, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, config.vision.image_size, config.vision.image_size, generator=g)
    tokens = torch.randint(1, 1000, (batch, config.text.context_length), generator=g)
    tokens[:, 10] = config.text.vocab_size - 1
    tokens[:, 11:] = 0
    return images, tokens


def test_logit_scale_starts_at_temperature_0_07_and_never_scales_beyond_100():
    model = CLIP("tiny-vit")
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.logit_scale_exp().item() == pytest.approx(1 / 0.07, rel=1e-6)
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    assert model.logit_scale_exp().item() == pytest.approx(100.0)
    _, _, scale = model(*_batch(model.config))
    assert scale.item() == pytest.approx(100.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100)) and model.logit_scale.item() <= math.log(100)
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == 0.0


def test_logit_scale_at_the_clip_still_gets_a_gradient():
    """A parameter clipped to the bound still gets a gradient, so the loss can lower the scale again."""
    model = CLIP("tiny-vit")
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    model.clamp_logit_scale_()
    model.logit_scale_exp().backward()
    assert model.logit_scale.grad.item() == pytest.approx(100.0, rel=1e-5)
    assert model.logit_scale_exp().item() <= 100.0


def _loss(model, images, tokens):
    image_features, text_features, scale = model(images, tokens)
    return (scale * image_features @ text_features.T).logsumexp(dim=1).mean()


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-rn"])
def test_gradient_checkpointing_gives_the_same_gradients_and_batch_norm_statistics(name):
    torch.manual_seed(0)
    plain = CLIP(name)
    with torch.no_grad():  # non-zero last BN gains, so every block contributes
        for key, tensor in plain.state_dict().items():
            if key.endswith("bn3.weight"):
                tensor.fill_(0.5)
    ckpt = CLIP(name)
    ckpt.load_state_dict(plain.state_dict())
    ckpt.set_grad_checkpointing(True)
    images, tokens = _batch(plain.config)
    _loss(plain.train(), images, tokens).backward()
    _loss(ckpt.train(), images, tokens).backward()
    ckpt_params = dict(ckpt.named_parameters())
    for key, param in plain.named_parameters():
        torch.testing.assert_close(ckpt_params[key].grad, param.grad, rtol=1e-5, atol=1e-6, msg=key)
    # batch norm ran once per step: running statistics equal, counters at 1
    ckpt_state = ckpt.state_dict()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ckpt_state[key], value, msg=key)
        if key.endswith("num_batches_tracked"):
            assert value.item() == 1


def test_registry_holds_the_paper_models_and_small_ones():
    paper = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"]
    assert set(paper) <= set(MODELS)
    assert get_config("ViT-L-14-336") is MODELS["ViT-L/14@336px"]
    for name in paper:
        config = MODELS[name]
        assert (config.text.vocab_size, config.text.context_length, config.quick_gelu) == (49408, 77, True)
    assert get_config("RN50").family == "resnet" and get_config("ViT-B/16").family == "vit"
    assert get_config("RN50x16").vision.heads == 48 and get_config("ViT-L/14").vision.heads == 16
    with pytest.raises(UnknownModel, match="unknown model 'ViT-X'.*RN50"):
        get_config("ViT-X")
    with pytest.raises(AttributeError):
        MODELS["RN50"].embed_dim = 3  # frozen


def test_small_models_run_at_64_px():
    for name in ("tiny-vit", "tiny-rn", "small-vit"):
        model = CLIP(name).eval()
        images, tokens = _batch(model.config, batch=2)
        with torch.no_grad():
            image_features, text_features, _ = model(images, tokens)
        assert image_features.shape == text_features.shape == (2, model.config.embed_dim)
        torch.testing.assert_close(image_features.norm(dim=-1), torch.ones(2))


def test_wrong_context_length_is_one_clear_error():
    model = CLIP("tiny-vit")
    with pytest.raises(ValueError, match="token rows are 10 long, the model's context is 77"):
        model.encode_text(torch.zeros(2, 10, dtype=torch.long))


def test_openai_state_dict_drops_non_tensor_entries_and_ddp_prefix():
    model = CLIP("tiny-rn")
    raw = {"module." + k: v for k, v in model.state_dict().items()}
    raw.update(input_resolution=64, context_length=77, vocab_size=49408)
    CLIP("tiny-rn").load_state_dict(openai_state_dict(raw), strict=True)
