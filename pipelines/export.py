"""Export a `wit train` run's model so other CLIP tools load it.

    wit export RUN --out model.pt [--format openai]        a state dict in OpenAI's layout (open_clip.load_checkpoint)
    wit export RUN --out model.pt --format open_clip       {"state_dict": ...} plus model.json, OpenCLIP's model config:
        open_clip.add_model_config("model.json"); open_clip.create_model("model", pretrained="model.pt")

The newest checkpoint of RUN is exported (local or s3://); it is read with torch.load(weights_only=True).
"""

from __future__ import annotations

import argparse

HELP = "export a training run's model in OpenAI's or OpenCLIP's checkpoint format"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.export import FORMATS

    parser.add_argument("run", metavar="RUN", help="a `wit train --out` run folder (local or s3://)")
    parser.add_argument("--out", required=True, help="the checkpoint file to write (local or s3://)")
    parser.add_argument("--format", choices=FORMATS, default="openai", help="openai (default) or open_clip")


def run(args: argparse.Namespace) -> int:
    from trainer.export import export_run

    done = export_run(args.run, args.out, args.format)
    print(
        f"exported {done['model']} at step {done['step']:,} ({done['tensors']} tensors, {args.format} format): "
        + ", ".join(done["files"])
    )
    return 0
