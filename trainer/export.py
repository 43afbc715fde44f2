"""Export a training run's model for other tools: OpenAI's state-dict layout (what `open_clip.load_checkpoint` and
OpenAI-style loaders read) or an OpenCLIP checkpoint plus the model config JSON that `open_clip` needs to build it."""

from __future__ import annotations

import io
import json

import torch

from wit_builder import storage
from wit_builder.errors import WitError

FORMATS = ("openai", "open_clip")


def export_run(run: str, out: str, fmt: str = "openai") -> dict:
    """Write the newest checkpoint's weights of the run folder `run` to `out` (local or s3://); with open_clip also
    `out` with .json for its model config. Returns {model, step, files, tensors}."""
    if fmt not in FORMATS:
        raise WitError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    model, step = load_run_model(run)
    if model.objective != "contrastive":
        raise WitError(
            f"{run} was trained with --objective {model.objective}: only contrastive (CLIP) runs export to the "
            "OpenAI/OpenCLIP layouts"
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state if fmt == "openai" else {"state_dict": state, "step": step}, buffer)
    storage.write_bytes(out, buffer.getvalue())
    files = [out]
    if fmt == "open_clip":
        config_file = out.rsplit(".", 1)[0] + ".json"
        storage.write_bytes(config_file, (json.dumps(model.config.to_open_clip(), indent=2) + "\n").encode())
        files.append(config_file)
    return {"model": model.config.name, "step": step, "files": files, "tensors": len(state)}


def load_run_model(run: str, step: int | None = None):
    """The model of a `wit train` run folder at its newest checkpoint, or the one of `step` (weights_only=True): a CLIP,
    or the bag-of-words or captioning model of a run trained with that --objective. Returns (model, step)."""
    from trainer.objectives import build_model, tokenizer_vocab_size
    from trainer.ray_train import checkpoint_dirs, load_state

    config_uri = f"{run.rstrip('/')}/config.json"
    if not storage.exists(config_uri):
        raise WitError(f"{run} is not a `wit train` run folder (no config.json)")
    found = checkpoint_dirs(run)
    if not found:
        raise WitError(f"{run} holds no checkpoint yet: train first (`wit train ... --out {run}`)")
    if step is not None:
        found = [(s, path) for s, path in found if s == step]
        if not found:
            steps = ", ".join(str(s) for s, _ in checkpoint_dirs(run))
            raise WitError(f"{run} has no checkpoint of step {step} (it has {steps})")
    config = json.loads(storage.read_bytes(config_uri))["config"]
    model = build_model(
        config["model"], config.get("objective", "contrastive"), tokenizer_vocab_size(config.get("tokenizer"))
    )
    model.load_state_dict(load_state(found[-1][1])["model"])
    return model.eval(), found[-1][0]
