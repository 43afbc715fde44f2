"""What Ray Train + Ray Data streaming cost against a plain PyTorch loop over the same shards (goal: within 10 %).

    .venv/bin/python benchmarks/bench_train_overhead.py                # tiny-vit, batch 64, the demo build's shards
    .venv/bin/python benchmarks/bench_train_overhead.py --data OUT --model tiny-rn --steps 60

Both arms train the same model config from the same seed on the same shards, CPU fp32, with the same step
(`trainer.loop.train_step`) and the same data code (`trainer.data`: decode, resize, tokenise, random square crop):
- plain: one process; `trainer.data.iter_plain` decodes with the webdataset library in the loop itself, then
  `collate` and `train_step`; torch uses every core;
- ray: `wit train` as users run it (`trainer.ray_train.train`, one Ray Train worker holding one CPU for torch, Ray
  Data decoding on the others, a local Ray cluster started for the arm).
samples/s counts wall time per step including the wait for the batch (metrics.jsonl's samples_per_s for ray),
after --warmup steps (the pipeline's start-up is reported apart). Overhead = 1 - ray / plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULT_DATA = os.path.join(os.path.expanduser("~"), ".cache", "wit", "demo", "build")


def plain_arm(data: str, model_name: str, batch: int, steps: int, warmup: int, seed: int) -> dict:
    """Steps of a hand-run loop; returns samples/s after warm-up and the seconds to the first step."""
    import numpy as np
    import torch

    from trainer.data import collate, iter_plain, resolve_shards
    from trainer.loop import train_step
    from trainer.loss import ClipLoss
    from trainer.models import CLIP
    from trainer.optim import build_optimizer, cosine_schedule

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    model = CLIP(model_name)
    optimizer = build_optimizer(model)
    scheduler = cosine_schedule(optimizer, warmup_steps=10, total_steps=steps + warmup)
    loss_fn = ClipLoss()
    size = model.config.vision.image_size
    pending: dict = {}
    times, losses = [], []
    start = time.perf_counter()
    first_step_s = None
    rows_iter = iter_plain(resolve_shards(data), size, batch_rows=batch)
    while len(times) < steps + warmup:
        t0 = time.perf_counter()
        while len(pending.get("key", ())) < batch:  # fill one batch of good rows, as the Ray arm's batcher does
            rows = next(rows_iter)
            good = rows["reason"] == ""
            pending = {k: np.concatenate([pending[k], v[good]]) if k in pending else v[good] for k, v in rows.items()}
        take = {k: v[:batch] for k, v in pending.items()}
        pending = {k: v[batch:] for k, v in pending.items()}
        tensors = collate(take, size, seed=seed, epoch=0, train=True)
        metrics = train_step(
            model, {"images": tensors["images"], "tokens": tensors["tokens"]}, optimizer, scheduler, loss_fn
        )
        times.append(time.perf_counter() - t0)
        losses.append(metrics["loss"])
        if first_step_s is None:
            first_step_s = time.perf_counter() - start
    timed = times[warmup:]
    return {"samples_per_s": batch * len(timed) / sum(timed), "first_step_s": first_step_s, "loss": losses[-1]}


def ray_arm(data: str, model_name: str, batch: int, steps: int, warmup: int, seed: int, work: str) -> dict:
    """`wit train` for warm-up + steps; samples/s from its metrics.jsonl after warm-up."""
    from pipelines import ray_env
    from trainer.ray_train import train
    from trainer.run_config import TrainConfig

    ray_env.init_local(num_cpus=os.cpu_count() or 1, join_head=False)
    out = os.path.join(work, "run")
    start = time.perf_counter()
    cfg = TrainConfig(
        data=data,
        model=model_name,
        out=out,
        epochs=1,
        batch_size=batch,
        warmup=10,
        seed=seed,
        max_steps=steps + warmup,
        log_every=1,
        checkpoint_every=10_000,
        shuffle_buffer=0,
    )
    summary = train(cfg)
    wall = time.perf_counter() - start
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"), encoding="utf-8")]
    timed = [x for x in lines if x["step"] > warmup]
    rate = statistics.median(x["samples_per_s"] for x in timed)
    return {
        "samples_per_s": rate,
        "wall_s": wall,
        "loss": summary.get("final_loss"),
        "data_wait": statistics.median(x["data_wait_fraction"] for x in timed),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="a build folder or shards (default: the demo build)")
    parser.add_argument("--model", default="tiny-vit")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per arm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from trainer.data import resolve_shards

    resolve_shards(args.data)  # one clear line when there are no shards (the demo's: run `make demo`)
    plain = plain_arm(args.data, args.model, args.batch_size, args.steps, args.warmup, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_train_overhead_") as work:
        ray = ray_arm(args.data, args.model, args.batch_size, args.steps, args.warmup, args.seed, work)
    print(
        f"model {args.model}, batch {args.batch_size}, {args.steps} timed steps after {args.warmup}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n"
    )
    print("| arm | samples/s | vs plain | start-up | final loss |")
    print("|---|---:|---:|---|---:|")
    print(
        f"| plain PyTorch loop | {plain['samples_per_s']:.1f} | 1.00x | first step after "
        f"{plain['first_step_s']:.1f} s | {plain['loss']:.4f} |"
    )
    print(
        f"| Ray Train + Ray Data (`wit train`) | {ray['samples_per_s']:.1f} | "
        f"{ray['samples_per_s'] / plain['samples_per_s']:.2f}x | whole run {ray['wall_s']:.1f} s | "
        f"{ray['loss']:.4f} |"
    )
    print(
        f"\noverhead of Ray: {100 * (1 - ray['samples_per_s'] / plain['samples_per_s']):.1f} % "
        f"(median data wait in the Ray arm: {100 * ray['data_wait']:.1f} % of step time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
