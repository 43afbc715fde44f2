"""Checkpoint files on disk load into our models: OpenCLIP's saved state dict, an OpenCLIP training checkpoint with
DDP's prefix, a TorchScript archive (the form of OpenAI's released files); a wrong model or a foreign file is one
clear error."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from trainer.checkpoints import load_clip, read_state_dict
from trainer.config import get_config
from trainer.models import CLIP
from wit_builder.errors import WitError

TOL = dict(rtol=1e-5, atol=1e-5)


def _open_clip_model(tmp_path, name="tiny-vit"):
    config = get_config(name)
    (tmp_path / f"wit-ckpt-{name}.json").write_text(json.dumps(config.to_open_clip()))
    open_clip.add_model_config(tmp_path / f"wit-ckpt-{name}.json")
    torch.manual_seed(3)
    return open_clip.create_model(f"wit-ckpt-{name}", pretrained=None).eval()


def _features(model, name="tiny-vit"):
    config = get_config(name)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, config.vision.image_size, config.vision.image_size, generator=g)
    tokens = torch.zeros(2, config.text.context_length, dtype=torch.long)
    tokens[:, :4] = torch.tensor([49406, 320, 2368, 49407])
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_open_clip_state_dict_and_training_checkpoint_load(tmp_path):
    theirs = _open_clip_model(tmp_path)
    plain = tmp_path / "plain.pt"
    torch.save(theirs.state_dict(), plain)
    training = tmp_path / "epoch_1.pt"  # open_clip_train's layout: DDP prefix, optimizer beside the weights
    state = {"module." + k: v for k, v in theirs.state_dict().items()}
    torch.save({"epoch": 1, "name": "run", "state_dict": state, "optimizer": {"state": {}}}, training)
    expected = _features(theirs)
    for path in (plain, training):
        ours = load_clip(str(path), "tiny-vit")
        for a, b in zip(_features(ours), expected):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_archive_loads(tmp_path):
    source = CLIP("tiny-vit").eval()
    size = source.config.vision.image_size
    traced = torch.jit.trace(
        source, (torch.randn(1, 3, size, size), torch.zeros(1, 77, dtype=torch.long)), check_trace=False
    )
    path = tmp_path / "model.jit.pt"
    torch.jit.save(traced, str(path))
    state = read_state_dict(str(path))
    assert set(state) == set(source.state_dict())
    for a, b in zip(_features(load_clip(str(path), "tiny-vit")), _features(source)):
        torch.testing.assert_close(a, b, **TOL)


def test_wrong_model_and_foreign_files_are_one_line(tmp_path):
    path = tmp_path / "rn.pt"
    torch.save(CLIP("tiny-rn").state_dict(), path)
    with pytest.raises(WitError, match="does not fit model 'tiny-vit'"):
        load_clip(str(path), "tiny-vit")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WitError, match="not a readable CLIP checkpoint"):
        read_state_dict(str(tmp_path / "junk.pt"))
    with pytest.raises(WitError, match="does not exist"):
        read_state_dict(str(tmp_path / "missing.pt"))
