"""The paper's evaluation-only studies at demo scale (docs/studies.md):

    wit study prompts --checkpoint RUN [--data-dir EVAL] [--tasks digits,emoji-group] --out STUDY
        zero-shot top-1 with the bare class name, "a photo of a {c}." and the 80-prompt ensemble (Figure 4)
    wit study fewshot --checkpoint RUN --out STUDY [--shots 1,2,4,8,16] [--seeds 0,1,2]
        few-shot linear probes against zero-shot, and how many shots zero-shot is worth (Figure 6)
    wit study prompts --data OUT --out STUDY [--epochs 1]
        first trains a tiny-vit on the `wit build` folder OUT into STUDY/run, then studies it

CKPT/RUN as for `wit eval` (a `wit train` run folder, or a checkpoint file with --model). --tasks defaults to every
classification task `wit eval data` wrote (the shift family aside). STUDY gets results.parquet (one row per task, arm,
x, metric and seed; both studies' rows when both were run into it: `wit sql STUDY "SELECT * FROM results"`),
summary.md (a table per study beside the paper's finding) and one PNG per study.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import sys

DEFAULT_SHOTS = "1,2,4,8,16"
HELP = "the paper's evaluation studies at demo scale: prompts (Figure 4), fewshot (Figure 6)"
STUDIES = ("prompts", "fewshot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY", help=f"which study: {', '.join(STUDIES)}")
    parser.add_argument("--checkpoint", help="a `wit train` run folder or a checkpoint file (local or s3://)")
    parser.add_argument("--data", help="without --checkpoint: a `wit build` folder to train a small model on first")
    parser.add_argument("--model", help="the architecture of a checkpoint file; with --data, what to train (tiny-vit)")
    parser.add_argument("--tokenizer", help="a BPE merges file (default: the run's own, else OpenAI's)")
    parser.add_argument("--data-dir", help="where `wit eval data` wrote the tasks (default $WIT_CACHE/eval)")
    parser.add_argument("--tasks", help="comma-separated evaluation tasks (default: every classification task)")
    parser.add_argument("--out", required=True, help="the study folder: results.parquet, summary.md, PNGs")
    parser.add_argument(
        "--shots",
        help="fewshot: labelled images per class (default 1,2,4,8,16, cut per task to what its smallest class has; "
        "given explicitly, a task that cannot give them is an error)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="fewshot: one probe per seed and k (default 0,1,2)")
    parser.add_argument("--epochs", type=int, default=1, help="with --data: training epochs (default 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="with --data: the training batch (default 64)")


def run(args: argparse.Namespace) -> int:
    from eval.model import load_eval_model
    from eval.run import EvalOptions, Evaluator

    study = check_study(args.study)
    shots, seeds = int_list(args.shots or DEFAULT_SHOTS, "--shots"), int_list(args.seeds, "--seeds")
    tasks = study_tasks(args.tasks, args.data_dir)
    checkpoint = args.checkpoint or train_first(args)
    options = EvalOptions(data_dir=args.data_dir, shots=shots, seeds=seeds, progress=sys.stderr.isatty())
    evaluator = Evaluator(load_eval_model(checkpoint, args.model, args.tokenizer), options)
    print(f"study {study}: {', '.join(tasks)} ...", file=sys.stderr)
    rows = compute(study, evaluator, tasks, shots, seeds, strict=args.shots is not None)
    written = write_study(args.out, study, rows)
    print(summary_text(read_rows(args.out)))
    print(f"study: {', '.join(written)}", file=sys.stderr)
    return 0


def check_study(name: str) -> str:
    """The study's name, or a WitError listing the ones there are."""
    from wit_builder.errors import WitError

    if name not in STUDIES:
        raise WitError(f"unknown study {name!r}: choose one of {', '.join(STUDIES)}")
    return name


def int_list(text: str, flag: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); a WitError naming the flag otherwise."""
    from wit_builder.errors import WitError

    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise WitError(f"{flag} {text!r} is not a comma-separated list of integers") from None
    if not values:
        raise WitError(f"{flag} is empty: give a comma-separated list of integers")
    return values


def study_tasks(tasks: str | None, data_dir: str | None) -> list[str]:
    """The named tasks, or every classification task written under data_dir except the shift family."""
    from eval.tasks import KINDS, SHIFT_TASKS, available_tasks

    names = [t for t in (tasks or "").split(",") if t]
    if names:
        return names
    return [t for t in available_tasks(data_dir) if KINDS.get(t) == "classification" and t not in SHIFT_TASKS]


def train_first(args: argparse.Namespace) -> str:
    """Without --checkpoint: train a small model on --data into OUT/run (ray_train.train) and return that run."""
    from trainer.ray_train import train
    from trainer.run_config import TrainConfig
    from wit_builder.errors import WitError

    if not args.data:
        raise WitError(
            "give --checkpoint RUN (a `wit train` run folder or checkpoint file), or --data OUT to train first"
        )
    run = f"{args.out.rstrip('/')}/run"
    cfg = TrainConfig(
        data=args.data,
        model=args.model or "tiny-vit",
        out=run,
        epochs=args.epochs,
        batch_size=args.batch_size,
        warmup=10,
    )
    print(f"study: training {cfg.model} on {args.data} for {cfg.epochs} epoch(s) into {run} ...", file=sys.stderr)
    train(cfg)
    args.model = None  # the run folder says its architecture
    return run


def compute(
    study: str, evaluator, tasks: list[str], shots: tuple[int, ...], seeds: tuple[int, ...], strict: bool = True
) -> list[dict]:
    """The study's tidy rows."""
    if study == "prompts":
        from eval.studies.prompts import prompt_rows

        return prompt_rows(evaluator, tasks)
    from eval.studies.fewshot import fewshot_rows

    return fewshot_rows(evaluator, tasks, shots, seeds, strict)


def read_rows(out: str) -> list[dict]:
    """The rows already in OUT/results.parquet (none when there is no such file)."""
    import io

    import pyarrow.parquet as pq

    from wit_builder import storage

    path = f"{out.rstrip('/')}/results.parquet"
    if not storage.exists(path):
        return []
    return pq.read_table(io.BytesIO(storage.read_bytes(path))).to_pylist()


def write_study(out: str, study: str, rows: list[dict]) -> list[str]:
    """Replace this study's rows in OUT/results.parquet (keeping the other study's), rewrite summary.md, draw
    OUT/STUDY.png; returns the paths written."""
    import io
    import tempfile

    import pyarrow.parquet as pq

    from eval.studies import results_table
    from eval.studies.fewshot import plot_fewshot
    from eval.studies.prompts import plot_prompts
    from wit_builder import storage

    folder = out.rstrip("/")
    merged = [r for r in read_rows(folder) if r["task"] != study] + rows
    buffer = io.BytesIO()
    pq.write_table(results_table(merged), buffer)
    storage.write_bytes(f"{folder}/results.parquet", buffer.getvalue())
    storage.write_bytes(f"{folder}/summary.md", summary_text(merged).encode())
    plot = plot_prompts if study == "prompts" else plot_fewshot
    with tempfile.TemporaryDirectory() as tmp:
        plot(rows, f"{tmp}/plot.png")
        with open(f"{tmp}/plot.png", "rb") as handle:
            storage.write_bytes(f"{folder}/{study}.png", handle.read())
    return [f"{folder}/results.parquet", f"{folder}/summary.md", f"{folder}/{study}.png"]


def summary_text(rows: list[dict]) -> str:
    """summary.md: a section per study present in the rows."""
    from eval.studies import fewshot, prompts

    parts = ["# Studies at demo scale\n"]
    if any(r["task"] == prompts.STUDY for r in rows):
        parts.append("## Prompt engineering and ensembling (Figure 4)\n\n" + prompts.summary(rows))
    if any(r["task"] == fewshot.STUDY for r in rows):
        parts.append("## Zero-shot vs few-shot linear probes (Figure 6)\n\n" + fewshot.summary(rows))
    return "\n".join(parts)


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
