"""The model under evaluation with its tokenizer: a `wit train` run folder (its newest checkpoint, and the BPE it was
trained with), or a checkpoint file on disk (OpenAI/OpenCLIP state dicts, OpenCLIP training checkpoints, our exports,
TorchScript archives) with the architecture it was trained as; OpenAI's tokenizer unless one is given."""

from __future__ import annotations

import json
from dataclasses import dataclass

from trainer.config import MODELS
from wit_builder import storage
from wit_builder.errors import WitError


@dataclass
class EvalModel:
    model: object  # trainer.models.clip.CLIP in eval mode
    tokenizer: object  # trainer.tokenizer.ClipTokenizer
    name: str  # the architecture
    checkpoint: str  # where the weights came from
    step: int | None = None  # a run's checkpoint step


def model_name(name: str) -> str:
    """Our architecture name for ours or OpenCLIP's spelling (ViT-B-32 -> ViT-B/32)."""
    if name in MODELS:
        return name
    for ours in MODELS:
        if ours.replace("/", "-") == name:
            return ours
    raise WitError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")


def load_eval_model(checkpoint: str, model: str | None = None, tokenizer: str | None = None) -> EvalModel:
    """`checkpoint` a run folder (model and tokenizer from its config) or a file (then `model` is required)."""
    from trainer.tokenizer import load_tokenizer

    run_config = f"{checkpoint.rstrip('/')}/config.json"
    if storage.exists(run_config):
        from trainer.export import load_run_model

        clip, step = load_run_model(checkpoint)
        trained_with = json.loads(storage.read_bytes(run_config))["config"].get("tokenizer")
        tok = load_tokenizer(tokenizer or trained_with, clip.config.text.context_length)
        return EvalModel(clip, tok, clip.config.name, checkpoint, step)
    if not storage.exists(checkpoint):
        raise WitError(f"checkpoint {checkpoint} does not exist (give a `wit train` run folder or a checkpoint file)")
    if model is None:
        raise WitError(f"{checkpoint} is a checkpoint file: say which architecture it is with --model (e.g. ViT-B/32)")
    from trainer.checkpoints import load_clip

    name = model_name(model)
    clip = load_clip(checkpoint, name)
    return EvalModel(clip, load_tokenizer(tokenizer, clip.config.text.context_length), name, checkpoint)
