"""Training step: ours vs OpenCLIP's own, side by side on the same decoded shards: samples/s and peak memory.

    .venv/bin/python benchmarks/bench_train.py                        # tiny-vit and tiny-rn, batch 128, CPU fp32
    .venv/bin/python benchmarks/bench_train.py --models tiny-vit --repeats 5 --steps 4 --compile ours

Data: real images and captions from WebDataset shards (default: the demo build's, ~/.cache/wit/demo/build/shards/*.tar;
`--shards PATTERN` for others), decoded once in this process: shorter side resized to the model's size (bicubic),
center-cropped, normalised with CLIP's mean/std, captions tokenised with `trainer.tokenizer` (ids equal OpenCLIP's).
The decoded tensors go to one temporary file that every arm loads, so both arms step over the same batches in the
same order (batch i = rows i*B..(i+1)*B-1, cycling).

Arms, each in its own long-lived subprocess (so that its peak RSS is its own), driven in turn by this process:
- ours: `trainer.models.CLIP(get_config(model))`, `build_optimizer` (AdamW, the paper's groups and betas),
  `cosine_schedule`, `ClipLoss`, one `trainer.loop.train_step` per batch (what `wit train` runs per step);
- openclip: `open_clip.create_model(<same config>, pretrained=None, output_dict=True)`, `open_clip.loss.ClipLoss`,
  `torch.optim.AdamW` with open_clip_train's param groups (gains/biases/bn/ln/logit_scale without decay) and its
  default betas/eps per family, `open_clip_train.scheduler.cosine_lr`, and open_clip_train's step: scheduler, zero_grad,
  forward, loss, backward, optimizer step, logit-scale clamp;
- plain (--plain): our model in a hand-written loop (forward, `clip_loss`, backward, AdamW step), no train_step.
Each arm first runs --warmup untimed steps; then --repeats rounds of --steps timed steps per arm, the arms interleaved
(ours, openclip, openclip, ours, ... : the order flips every round against drift). samples/s = steps * batch / seconds
of a round; the table gives the median over rounds and the ratio of medians to OpenCLIP's. Peak RSS = the arm process's
VmHWM (its high-water mark, read from /proc at the end) and the largest sum over its process tree (sampled every 50 ms;
it differs only when torch.compile's workers run); "step MB" = VmHWM minus the RSS after the data was loaded, the
memory the model, optimiser and step themselves add.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _proc import tree_rss  # noqa: E402 - benchmarks/ is on sys.path when run as a script

DEFAULT_SHARDS = os.path.join(os.path.expanduser("~"), ".cache", "wit", "demo", "build", "shards", "*.tar")
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
ARMS = ("ours", "openclip")


class NoShards(SystemExit):
    pass


# --- data: decoded once, in the driver -------------------------------------------------------------------------------


def iter_samples(pattern: str):
    """(key, image bytes, caption) of every sample with an image and a non-empty caption, shard by shard."""
    paths = sorted(glob.glob(os.path.expanduser(pattern)))
    if not paths:
        raise NoShards(f"no shards match {pattern}: run `make demo` to build the demo shards, or pass --shards PATTERN")
    for path in paths:
        with tarfile.open(path) as tar:
            group: dict[str, dict[str, bytes]] = {}
            order: list[str] = []
            for member in tar:
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                key, _, suffix = base.partition(".")
                key = os.path.join(os.path.dirname(member.name), key)
                if suffix.lower() not in IMAGE_SUFFIXES + ("txt",):
                    continue
                if key not in group:
                    group[key] = {}
                    order.append(key)
                group[key][suffix.lower()] = tar.extractfile(member).read()
            for key in order:
                sample = group[key]
                image = next((sample[s] for s in IMAGE_SUFFIXES if s in sample), None)
                caption = sample.get("txt", b"").decode("utf-8", errors="replace").strip()
                if image is not None and caption:
                    yield key, image, caption


def decode(data: bytes, size: int):
    """uint8 [3, size, size]: shorter side resized to `size` (bicubic), center crop."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
        arr = np.asarray(im.crop((left, top, left + size, top + size)))
    return arr.transpose(2, 0, 1)


def decode_shards(pattern: str, size: int, count: int, path: str) -> dict:
    """Decode up to `count` samples (a multiple of the batch size is taken by the caller) into `path` (torch.save of
    uint8 images [n, 3, S, S] and int64 tokens [n, 77]); returns what was read."""
    import numpy as np
    import torch

    from trainer.tokenizer import ClipTokenizer

    images, captions, bad = [], [], 0
    start = time.perf_counter()
    for _, data, caption in iter_samples(pattern):
        try:
            images.append(decode(data, size))
        except Exception:  # noqa: BLE001 - an undecodable image is skipped, as the trainer skips it
            bad += 1
            continue
        captions.append(caption)
        if len(images) == count:
            break
    if not images:
        raise NoShards(f"no decodable image with a caption in {pattern}: run `make demo`, or pass --shards PATTERN")
    tokens = ClipTokenizer.openai()(captions)
    torch.save({"images": torch.from_numpy(np.stack(images)), "tokens": tokens}, path)
    return {"samples": len(images), "bad": bad, "seconds": time.perf_counter() - start}


# --- one arm, in its own process ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _register_open_clip(config) -> str:
    import open_clip

    name = f"bench-{config.name}"
    folder = tempfile.mkdtemp(prefix="bench-train-cfg-")
    path = os.path.join(folder, f"{name}.json")
    with open(path, "w") as f:
        json.dump(config.to_open_clip(), f)
    open_clip.add_model_config(path)
    return name


def build_arm(
    arm: str, model_name: str, total_steps: int, channels_last: bool, compile_model: bool, fused_adam: bool = False
):
    """A `step(images, tokens) -> loss` closure for the arm, with its model, optimiser and schedule."""
    import torch

    from trainer.config import get_config

    config = get_config(model_name)
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if arm in ("ours", "plain"):
        from trainer.loop import train_step
        from trainer.loss import ClipLoss, clip_loss
        from trainer.models import CLIP
        from trainer.optim import build_optimizer, cosine_schedule

        model = CLIP(config).to(memory_format=memory_format)
        optimizer = build_optimizer(model)
        if fused_adam:  # the same groups and settings, one fused kernel per step (a trainer/optim.py change)
            groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in optimizer.param_groups]
            optimizer = torch.optim.AdamW(groups, fused=True)
        forward = torch.compile(model) if compile_model else model
        scheduler = cosine_schedule(optimizer, warmup_steps=2000, total_steps=max(total_steps, 2001))
        if arm == "ours":
            loss_fn = ClipLoss()

            def step(images, tokens):
                images = images.contiguous(memory_format=memory_format)
                return train_step(forward, {"images": images, "tokens": tokens}, optimizer, scheduler, loss_fn)["loss"]

            return step

        def plain_step(images, tokens):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss = clip_loss(*forward(images.contiguous(memory_format=memory_format), tokens))
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            return loss.item()

        return plain_step

    import open_clip
    from open_clip_train.scheduler import cosine_lr

    model = open_clip.create_model(_register_open_clip(config), pretrained=None, output_dict=True)
    model = model.to(memory_format=memory_format)

    def exclude(n, p):  # open_clip_train.main's rule
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    named = list(model.named_parameters())
    resnet = config.vision.is_resnet  # open_clip_train.params.get_default_params: the paper's betas/eps per family
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in named if exclude(n, p) and p.requires_grad], "weight_decay": 0.0},
            {"params": [p for n, p in named if not exclude(n, p) and p.requires_grad], "weight_decay": 0.2},
        ],
        lr=5e-4,
        betas=(0.9, 0.999 if resnet else 0.98),
        eps=1e-8 if resnet else 1e-6,
    )
    scheduler = cosine_lr(optimizer, 5e-4, 2000, max(total_steps, 2001))
    loss_fn = open_clip.loss.ClipLoss()
    forward = torch.compile(model) if compile_model else model
    counter = [0]

    def their_step(images, tokens):  # open_clip_train.train.train_one_epoch, accum_freq 1, no scaler, no clipping
        model.train()
        scheduler(counter[0])
        counter[0] += 1
        optimizer.zero_grad()
        out = forward(images.contiguous(memory_format=memory_format), tokens)
        losses = loss_fn(**out, output_dict=True)
        total = sum(losses.values())
        total.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        return total.item()

    return their_step


def run_worker(args) -> None:
    """Child: load the data, build the arm, then answer `run N` lines on stdin with a JSON line each; `quit` ends."""
    import torch

    torch.set_num_threads(args.threads)
    data = torch.load(args.data, weights_only=True)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    images = ((data.pop("images").float() / 255.0) - mean) / std
    tokens = data.pop("tokens")
    n = images.shape[0] // args.batch_size * args.batch_size
    images, tokens = images[:n].contiguous(), tokens[:n].contiguous()
    batches = n // args.batch_size
    rss_data = _status_kb("VmRSS")
    from trainer.config import get_config

    mine = args.arm != "openclip"  # OpenCLIP's arm runs as open_clip_train does: contiguous (NCHW) tensors
    resnet = get_config(args.model).vision.is_resnet
    channels_last = mine and (args.channels_last == "all" or (args.channels_last == "resnet" and resnet))
    step = build_arm(
        args.arm, args.model, args.total_steps, channels_last, args.arm in args.compile_arms, mine and args.fused_adam
    )
    print(json.dumps({"ready": True, "batches": batches}), flush=True)
    done = 0
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        losses, start, cpu = [], time.perf_counter(), time.process_time()
        for _ in range(int(command[1])):
            i = done % batches * args.batch_size
            losses.append(step(images[i : i + args.batch_size], tokens[i : i + args.batch_size]))
            done += 1
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "losses": losses}), flush=True)
    print(json.dumps({"hwm_kb": _status_kb("VmHWM"), "rss_data_kb": rss_data, "steps": done}), flush=True)


class Arm:
    """The driver's handle on one arm's process: start it, run N steps, quit; samples its tree's RSS meanwhile."""

    def __init__(self, arm: str, model: str, data: str, args, total_steps: int):
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            arm,
            "--model",
            model,
            "--data",
            data,
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--total-steps",
            str(total_steps),
            "--channels-last",
            args.channels_last,
        ]
        command += (["--fused-adam"] if args.fused_adam else []) + (
            ["--compile", *args.compile_arms] if args.compile_arms else []
        )
        self.name = arm
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.peak_tree_kb = 0
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        self.ready = self._read()

    def _sample(self) -> None:
        while self.process.poll() is None:
            self.peak_tree_kb = max(self.peak_tree_kb, tree_rss(self.process.pid)[0] // 1024)
            time.sleep(0.05)

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise SystemExit(f"the {self.name} arm died (exit {code}); its error is above")
        return json.loads(line)

    def run(self, steps: int) -> dict:
        self.process.stdin.write(f"run {steps}\n")
        self.process.stdin.flush()
        return self._read()

    def quit(self) -> dict:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        end = self._read()
        self.process.wait()
        self.sampler.join()
        return end


def bench_model(model: str, data: str, args, arms: list[str]) -> list[dict]:
    total = args.warmup + args.repeats * args.steps
    handles = {}
    for arm in arms:  # started one after another, so that building one does not slow the other's start
        handles[arm] = Arm(arm, model, data, args, total)
    rounds: dict[str, list[dict]] = {arm: [] for arm in arms}
    losses: dict[str, list[float]] = {arm: [] for arm in arms}
    cpu_ms: dict[str, list[float]] = {arm: [] for arm in arms}
    try:
        for arm in arms:
            if args.warmup:
                losses[arm] += handles[arm].run(args.warmup)["losses"]
        for repeat in range(args.repeats):
            for arm in arms if repeat % 2 == 0 else arms[::-1]:
                result = handles[arm].run(args.steps)
                losses[arm] += result["losses"]
                rounds[arm].append(args.steps * args.batch_size / result["seconds"])
                cpu_ms[arm].append(1000 * result["cpu_s"] / (args.steps * args.batch_size))
                print(
                    f"  {model:<9} {arm:<9} round {repeat + 1}: {rounds[arm][-1]:6.1f} samples/s  "
                    f"loss {result['losses'][-1]:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
        ends = {arm: handles[arm].quit() for arm in arms}
    finally:
        for handle in handles.values():
            if handle.process.poll() is None:
                handle.process.kill()
    rows = []
    for arm in arms:
        rows.append(
            {
                "model": model,
                "arm": arm,
                "samples_per_s": statistics.median(rounds[arm]),
                "rounds": rounds[arm],
                "best": max(rounds[arm]),
                "cpu_ms_per_sample": statistics.median(cpu_ms[arm]),
                "final_loss": losses[arm][-1],
                "all_finite": all(math.isfinite(v) for v in losses[arm]),
                "peak_mb": ends[arm]["hwm_kb"] / 1024,
                "step_mb": (ends[arm]["hwm_kb"] - ends[arm]["rss_data_kb"]) / 1024,
                "peak_tree_mb": handles[arm].peak_tree_kb / 1024,
                "steps": ends[arm]["steps"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny-vit", "tiny-rn"])
    parser.add_argument("--shards", default=DEFAULT_SHARDS, help="WebDataset shards (glob; default: the demo build's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=1024, help="samples decoded (default 1024: 8 batches, cycled)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads in every arm")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per arm first")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per arm per round")
    parser.add_argument("--repeats", type=int, default=10, help="rounds (the arms interleaved)")
    parser.add_argument(
        "--channels-last",
        choices=("none", "resnet", "all"),
        default="resnet",
        help="channels-last model and images in our arms (default: for ResNets, 1.3x on CPU here); OpenCLIP's arm "
        "stays contiguous, as open_clip_train runs it",
    )
    parser.add_argument(
        "--fused-adam", action="store_true", help="our arms step AdamW(fused=True) (a trainer/optim.py change)"
    )
    parser.add_argument(
        "--compile",
        dest="compile_arms",
        nargs="*",
        default=[],
        choices=("ours", "openclip", "plain"),
        help="torch.compile these arms' models (--compile alone: ours)",
    )
    parser.add_argument("--plain", action="store_true", help="also time our model in a plain PyTorch loop")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--total-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.arm = args.worker
        run_worker(args)
        return
    if "--compile" in sys.argv and not args.compile_arms:
        args.compile_arms = ["ours"]

    from trainer.config import get_config

    arms = list(ARMS) + (["plain"] if args.plain else [])
    sizes = {name: get_config(name).vision.image_size for name in args.models}
    count = max(args.batch_size, args.images // args.batch_size * args.batch_size)
    all_rows = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as workdir:
        data_files, read = {}, {}
        try:
            for size in sorted(set(sizes.values())):
                data_files[size] = os.path.join(workdir, f"data-{size}.pt")
                read[size] = decode_shards(args.shards, size, count, data_files[size])
        except NoShards as error:
            print(error, file=sys.stderr)
            raise SystemExit(2) from None
        for size, info in read.items():
            if info["samples"] < args.batch_size:
                raise SystemExit(
                    f"only {info['samples']} samples in {args.shards}, fewer than one batch of {args.batch_size}: "
                    "use a smaller --batch-size or more shards"
                )
            print(
                f"decoded {info['samples']} samples at {size} px in {info['seconds']:.1f} s ({info['bad']} undecodable)",
                file=sys.stderr,
            )
        for name in args.models:
            all_rows += bench_model(name, data_files[sizes[name]], args, arms)
    print_table(all_rows, args, read)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_rows, f, indent=1)


def print_table(rows: list[dict], args, read: dict) -> None:
    import torch

    samples = ", ".join(f"{info['samples']} at {size} px" for size, info in read.items())
    compiled = f", torch.compile: {' '.join(args.compile_arms)}" if args.compile_arms else ""
    fused = ", fused AdamW" if args.fused_adam else ""
    print(
        f"\nCPU fp32, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}; "
        f"{samples} samples from {args.shards}; {args.warmup} warm-up + {args.repeats} rounds x {args.steps} steps "
        f"per arm, interleaved; ours: channels-last {args.channels_last}{compiled}{fused}; load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(
        "| model | arm | samples/s (median) | vs OpenCLIP | vs OpenCLIP, round by round (median) | "
        "samples/s (best round) | vs OpenCLIP (best) | CPU-ms/sample (median) | samples/s (rounds) | final loss | "
        "peak RSS MB | step MB | peak RSS tree MB |"
    )
    print("|---" * 13 + "|")
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["arm"] == "openclip")
        rounds = ", ".join(f"{v:.0f}" for v in row["rounds"])
        paired = statistics.median(m / t for m, t in zip(row["rounds"], base["rounds"]))
        print(
            f"| {row['model']} | {row['arm']} | {row['samples_per_s']:.1f} | "
            f"{row['samples_per_s'] / base['samples_per_s']:.2f}x | {paired:.2f}x | {row['best']:.1f} | "
            f"{row['best'] / base['best']:.2f}x | {row['cpu_ms_per_sample']:.2f} | {rounds} | {row['final_loss']:.4f} | "
            f"{row['peak_mb']:.0f} | {row['step_mb']:.0f} | {row['peak_tree_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
