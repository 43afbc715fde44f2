"""A CLIP checkpoint made by OpenCLIP itself (random weights, one of our architectures), saved to disk the way
open_clip_train saves one: what evaluation tests load through `wit eval` and compare with OpenCLIP's own results."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

from trainer.config import get_config


def open_clip_checkpoint(folder: Path, name: str = "tiny-vit", seed: int = 0):
    """(path of epoch_1.pt, the OpenCLIP model in eval mode, OpenCLIP's eval preprocess)."""
    config_name = "wit-test-" + name.replace("/", "-")
    (folder / f"{config_name}.json").write_text(json.dumps(get_config(name).to_open_clip()))
    open_clip.add_model_config(folder / f"{config_name}.json")
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(config_name, pretrained=None)
    path = folder / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    return str(path), model.eval(), preprocess
