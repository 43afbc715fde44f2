"""Train CLIP on WebDataset shards with Ray Train (docs/training.md).

    wit train --data OUT --model tiny-vit --out RUN [--objective contrastive|bow|caption] [--workers N]
              [--gpus-per-worker G] [--epochs E] [--batch-size B] [--lr LR] [--warmup W] [--checkpoint-every N]
              [--keep-checkpoints K] [--resume] [--seed S]
    ray job submit --working-dir . -- python pipelines/train.py --data OUT --model ... --out RUN

--data is a `wit build --out` folder (its finished shards), a folder of .tar shards made elsewhere (img2dataset,
OpenCLIP's LAION shards; sizes.json optional), a brace pattern ('shards/{00000..00009}.tar') or one .tar; local or
s3://. Ray Data decodes, crops and tokenises in parallel and streams each worker its share: every sample once per
epoch. RUN (local or s3://) receives config.json, metrics.jsonl (`wit sql RUN "SELECT * FROM metrics"`) and a
checkpoint every --checkpoint-every steps; `--resume` continues a stopped run mid-epoch where its last checkpoint
left it, with the same loss curve as an uninterrupted run. Defaults follow the paper (global batch 32,768, 32 epochs,
2,000 warm-up steps, the per-family AdamW settings); small runs on a CPU set --batch-size and --epochs.
`--objective bow|caption` trains the same image tower to predict the caption's bag of words or the caption itself
(the paper's Figure 2 baselines) instead of CLIP's contrastive objective.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import logging
import sys

from trainer.run_config import TrainConfig

HELP = "train CLIP on WebDataset shards with Ray Train: checkpoints, resume, metrics.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig(data="", model="", out="")
    parser.add_argument(
        "--data",
        metavar="DATA",
        required=True,
        help="a `wit build --out` folder, a folder of .tar shards, a brace pattern or one .tar",
    )
    from trainer.config import MODELS

    parser.add_argument("--model", metavar="NAME", required=True, help=f"one of {', '.join(MODELS)}")
    parser.add_argument(
        "--out", metavar="RUN", required=True, help="run folder (local or s3://): config, metrics, checkpoints"
    )
    from trainer.objectives import OBJECTIVES

    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=d.objective,
        help="contrastive: CLIP (default); bow: predict the caption's bag of words from the image; caption: a "
        "transformer language model predicts the caption from the image (the paper's Figure 2)",
    )
    parser.add_argument("--workers", metavar="N", type=int, default=d.workers, help="Ray Train workers (default 1)")
    parser.add_argument(
        "--gpus-per-worker",
        metavar="G",
        type=float,
        default=d.gpus_per_worker,
        help="GPUs per worker; 0 trains on CPU with gloo, otherwise nccl (default 0)",
    )
    parser.add_argument(
        "--cpus-per-worker",
        metavar="C",
        type=float,
        default=d.cpus_per_worker,
        help="CPUs reserved per worker, the rest decode data (default 1)",
    )
    parser.add_argument(
        "--epochs", metavar="E", type=int, default=d.epochs, help=f"passes over the shards (paper: {d.epochs})"
    )
    parser.add_argument(
        "--batch-size",
        metavar="B",
        type=int,
        default=d.batch_size,
        help=f"GLOBAL batch, all workers together (paper: {d.batch_size:,})",
    )
    parser.add_argument("--lr", metavar="LR", type=float, default=None, help="peak learning rate (paper: 5e-4)")
    parser.add_argument(
        "--weight-decay", metavar="WD", type=float, default=None, help="AdamW weight decay (paper: 0.2)"
    )
    parser.add_argument(
        "--warmup", metavar="STEPS", type=int, default=d.warmup, help=f"linear warm-up steps (paper: {d.warmup:,})"
    )
    parser.add_argument(
        "--grad-clip", metavar="NORM", type=float, default=None, help="clip the gradient norm to this (default off)"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default=d.precision,
        help="auto: fp32 on CPU, bf16 on GPUs that have it, else fp16 with a grad scaler",
    )
    parser.add_argument(
        "--checkpoint-every",
        metavar="STEPS",
        type=int,
        default=d.checkpoint_every,
        help=f"steps between checkpoints (default {d.checkpoint_every}; one more at the end)",
    )
    parser.add_argument(
        "--keep-checkpoints",
        metavar="K",
        type=int,
        default=d.keep_checkpoints,
        help=f"the newest checkpoints to keep (default {d.keep_checkpoints}; 0 keeps every one)",
    )
    parser.add_argument(
        "--log-every", metavar="STEPS", type=int, default=d.log_every, help="steps between metrics lines (default 1)"
    )
    parser.add_argument(
        "--shuffle-buffer",
        metavar="ROWS",
        type=int,
        default=d.shuffle_buffer,
        help=f"rows in each worker's shuffle buffer; 0 keeps shard order (default {d.shuffle_buffer})",
    )
    parser.add_argument(
        "--tokenizer", metavar="FILE", default=None, help="BPE merges file (default: OpenAI's CLIP vocabulary)"
    )
    parser.add_argument(
        "--max-steps",
        metavar="STEPS",
        type=int,
        default=None,
        help="stop after this many steps in all (the schedule still spans --epochs)",
    )
    parser.add_argument(
        "--max-failures",
        metavar="N",
        type=int,
        default=d.max_failures,
        help="worker failures to recover from by restarting at the last checkpoint (default 0)",
    )
    parser.add_argument(
        "--data-stall-timeout",
        metavar="S",
        type=float,
        default=d.data_stall_timeout,
        help="seconds the data stream may move nothing before the workers fail and, with --max-failures, restart "
        "from the last checkpoint (default %(default)g; -1: wait forever)",
    )
    parser.add_argument(
        "--grad-checkpointing",
        action="store_true",
        help="recompute both towers' activations in the backward pass (less memory, more time)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (worth it on long GPU runs)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument(
        "--seed", metavar="S", type=int, default=d.seed, help="seed of the initialisation, shuffle and crops"
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data,
        model=args.model,
        out=args.out,
        objective=args.objective,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        grad_clip=args.grad_clip,
        precision=args.precision,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        log_every=args.log_every,
        shuffle_buffer=args.shuffle_buffer,
        seed=args.seed,
        tokenizer=args.tokenizer,
        max_steps=args.max_steps,
        max_failures=args.max_failures,
        data_stall_timeout=args.data_stall_timeout,
        grad_checkpointing=args.grad_checkpointing,
        compile=args.compile,
        resume=args.resume,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from trainer.ray_train import format_summary

    print(format_summary(main(config_from_args(args))))
    return 0


def main(cfg: TrainConfig) -> dict:
    """Train (or resume) on Ray; returns the summary dict."""
    from trainer.ray_train import train

    return train(cfg)


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
