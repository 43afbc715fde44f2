"""Embedding an evaluation set: `wit eval`'s in-process path vs a plain OpenCLIP loop (its eval transform in a torch
DataLoader, `encode_image`), side by side in one process on the same checkpoint and the same encoded images.

    .venv/bin/python benchmarks/bench_eval.py                              # emoji-group test split, tiny-vit
    .venv/bin/python benchmarks/bench_eval.py --dataset digits --model small-vit --repeats 5 --loader-workers 2

Data: the test split of an offline task written by `wit eval data` (default $WIT_CACHE/eval), or --synthetic N random
JPEGs. Model: our architecture `--model` with random weights (seed 0), saved once as an OpenCLIP training checkpoint
that both arms load. Rounds alternate the arms (ours, openclip, openclip, ours, ...); images/s is the median over
rounds, the ratio is ours / openclip, and the features of both arms are compared (max abs difference).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch


def _images(args) -> list[bytes]:
    if args.synthetic:
        from PIL import Image

        rng = np.random.default_rng(0)
        out = []
        for _ in range(args.synthetic):
            w, h = int(rng.integers(64, 400)), int(rng.integers(64, 400))
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
            out.append(buf.getvalue())
        return out
    from eval.datasets import load_eval_set

    data = load_eval_set(args.dataset, "test", data_dir=args.data_dir)
    return data.images[: args.limit] if args.limit else data.images


def _checkpoint(model_name: str, folder: str):
    """Our architecture with random weights as an OpenCLIP model, saved as OpenCLIP's training loop saves it."""
    import open_clip

    from trainer.config import get_config

    name = "bench-" + model_name.replace("/", "-")
    with open(f"{folder}/{name}.json", "w") as handle:
        json.dump(get_config(model_name).to_open_clip(), handle)
    open_clip.add_model_config(f"{folder}/{name}.json")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    path = f"{folder}/epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, path)
    return path, model.eval(), preprocess


class _Bytes(torch.utils.data.Dataset):
    def __init__(self, images, preprocess):
        self.images, self.preprocess = images, preprocess

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image

        return self.preprocess(Image.open(io.BytesIO(self.images[i])))


@torch.no_grad()
def openclip_embed(model, preprocess, images, batch_size, workers) -> np.ndarray:
    loader = torch.utils.data.DataLoader(_Bytes(images, preprocess), batch_size=batch_size, num_workers=workers)
    out = [torch.nn.functional.normalize(model.encode_image(batch), dim=-1) for batch in loader]
    return torch.cat(out).numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="emoji-group")
    parser.add_argument("--data-dir")
    parser.add_argument("--synthetic", type=int, default=0, help="N random JPEGs instead of a dataset")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--model", default="tiny-vit")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loader-workers", type=int, default=0, help="OpenCLIP arm's DataLoader workers")
    args = parser.parse_args(argv)

    from eval.embed import embed_images_local
    from eval.model import load_eval_model

    images = _images(args)
    with tempfile.TemporaryDirectory() as tmp:
        path, theirs, their_preprocess = _checkpoint(args.model, tmp)
        ours = load_eval_model(path, args.model).model
        times = {"ours": [], "openclip": []}
        feats = {}
        for r in range(args.repeats):
            for arm in ("ours", "openclip") if r % 2 == 0 else ("openclip", "ours"):
                start = time.perf_counter()
                if arm == "ours":
                    feats[arm] = embed_images_local(ours, images, args.batch_size).features
                else:
                    feats[arm] = openclip_embed(theirs, their_preprocess, images, args.batch_size, args.loader_workers)
                times[arm].append(time.perf_counter() - start)
    rates = {arm: len(images) / statistics.median(t) for arm, t in times.items()}
    diff = float(np.abs(feats["ours"] - feats["openclip"]).max())
    print(
        f"{len(images):,} images ({args.synthetic and 'synthetic' or args.dataset}), model {args.model}, "
        f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, {args.repeats} rounds"
    )
    print("| arm | images/s (median) | ratio to openclip |")
    print("|---|---|---|")
    for arm in ("ours", "openclip"):
        print(f"| {arm} | {rates[arm]:,.0f} | {rates[arm] / rates['openclip']:.2f}x |")
    print(f"max |feature difference| between the arms: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
