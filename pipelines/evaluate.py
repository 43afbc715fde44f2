"""Evaluate a CLIP model as the paper does: zero-shot classification with prompt ensembles, image-text retrieval,
linear probes on frozen features (and few-shot probes), and robustness to distribution shift (docs/evaluation.md).

    wit eval data --out DIR [--tasks digits,emoji-group,...] [--build OUT]
        writes the offline tasks as CLIP_benchmark-style WebDataset folders (default DIR: $WIT_CACHE/eval); with
        --build, also `demo-retrieval` from the last (held-out) shard of a `wit build` folder
    wit eval --checkpoint CKPT [--model ViT-B/32] --task zeroshot,linear-probe --dataset all --out results.json
    ray job submit --working-dir . -- python pipelines/evaluate.py --checkpoint ... --task ... --dataset ...

CKPT: a `wit train` run folder, or a checkpoint file (OpenAI/OpenCLIP state dict, OpenCLIP training checkpoint,
`wit export` file, OpenAI TorchScript archive) with --model. --dataset: a task name written by `wit eval data`,
`all` (every offline task), `shift` (robustness over clip-art/stamps/emoji), or a path: a CLIP_benchmark-style
WebDataset folder, an ImageFolder directory, or a Parquet/CSV file of (path or url, label). Several: comma-separated.

--out FILE.json gets a list of records in CLIP_benchmark's shape ({dataset, model, pretrained, task, metrics}); beside
it results.md (the table printed at the end), results.parquet (one row per metric, `wit sql DIR "SELECT * FROM
results"`) and, with --per-example, predictions.parquet (one row per test image: view `predictions`).
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import os
import sys

HELP = "evaluate a model: zero-shot, retrieval, linear probe, few-shot, robustness; `wit eval data` writes the tasks"
DEFAULT_OUT = "wit-eval/results.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eval.run import TASKS

    parser.add_argument(
        "action", nargs="?", choices=("data",), help="`data`: write the offline tasks instead of evaluating"
    )
    parser.add_argument("--checkpoint", help="a `wit train` run folder or a checkpoint file (local or s3://)")
    parser.add_argument("--model", help="the architecture of a checkpoint file, e.g. ViT-B/32 or ViT-B-32")
    parser.add_argument("--tokenizer", help="a BPE merges file (default: the run's own, else OpenAI's)")
    parser.add_argument(
        "--task", default="zeroshot", help=f"comma-separated, of: {', '.join(TASKS)} (default zeroshot)"
    )
    parser.add_argument("--dataset", default="all", help="task name(s), all, shift, or path(s); comma-separated")
    parser.add_argument(
        "--out",
        help=f"evaluation: the results JSON (default {DEFAULT_OUT}); data: the folder for the tasks "
        "(default $WIT_CACHE/eval)",
    )
    parser.add_argument("--templates", help="a template set (imagenet, one, name) or a file (one per line, {c})")
    parser.add_argument("--classnames", help="a class-names file (one per line, or JSON) for a user dataset")
    parser.add_argument("--data-dir", help="where `wit eval data` wrote the tasks (default $WIT_CACHE/eval)")
    parser.add_argument("--per-example", action="store_true", help="also write one row per test image")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="embed with Ray Data batch inference (default: from 20,000 images on)",
    )
    parser.add_argument("--shots", default="1,2,4,8,16", help="few-shot sizes per class (default 1,2,4,8,16)")
    parser.add_argument("--allow-host", action="append", default=[], help="a host a url dataset may fetch from")
    parser.add_argument("--tasks", help="data: which offline tasks to write (default all)")
    parser.add_argument("--build", help="data: a `wit build` folder whose last shard becomes demo-retrieval")
    parser.add_argument(
        "--limit",
        type=int,
        help="data: at most this many images per split of each task, every class kept (default all)",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "data":
        return _write_data(args)
    return _evaluate(args)


def _write_data(args: argparse.Namespace) -> int:
    from eval.datasets import default_data_dir
    from eval.tasks import build_tasks

    out = args.out or str(default_data_dir())
    names = [t for t in (args.tasks or "").split(",") if t] or None
    shards = [held_out_shard(args.build)] if args.build else None
    summary = build_tasks(out, names, progress=True, shards=shards, limit=args.limit)
    print(f"wrote {len(summary)} evaluation task(s) to {out}:")
    for name, info in summary.items():
        counts = ", ".join(f"{split} {n:,}" for split, n in info["n"].items())
        classes = f"{len(info['classes'])} classes" if info.get("classes") else "retrieval"
        print(f"  {name:<16} {classes:<12} {counts}")
    return 0


def held_out_shard(build: str) -> str:
    """The last finished shard of a `wit build` folder: the one `wit demo` holds out of training."""
    from wit_builder.errors import WitError
    from wit_builder.layout import BuildFolder

    urls = BuildFolder(build).shard_urls()
    if not urls:
        raise WitError(f"{build} has no finished shard to build demo-retrieval from")
    return urls[-1]


def _evaluate(args: argparse.Namespace) -> int:
    from eval.model import load_eval_model
    from eval.report import markdown_table, write_results
    from eval.run import TASKS, EvalOptions, Evaluator
    from wit_builder.errors import WitError

    if not args.checkpoint:
        raise WitError("give --checkpoint (a `wit train` run folder or a checkpoint file), or `wit eval data`")
    tasks = [t for t in args.task.split(",") if t]
    for task in tasks:
        if task not in TASKS:
            raise WitError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    try:
        shots = tuple(int(s) for s in args.shots.split(",") if s)
    except ValueError:
        raise WitError(f"--shots {args.shots!r} is not a comma-separated list of integers") from None
    out = args.out or DEFAULT_OUT
    folder = os.path.dirname(out) or "."
    options = EvalOptions(
        templates=args.templates,
        classnames=args.classnames,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        ray=args.ray,
        shots=shots,
        per_example=args.per_example,
        plot_dir=folder,
        progress=sys.stderr.isatty(),
        allow_hosts=tuple(args.allow_host),
    )
    model = load_eval_model(args.checkpoint, args.model, args.tokenizer)
    evaluator = Evaluator(model, options)
    pairs = plan(tasks, args.dataset, args.data_dir)
    records, predictions, chance = [], [], {}
    for task, dataset in pairs:
        print(f"eval: {task} on {dataset} ...", file=sys.stderr)
        result = evaluator.run(task, dataset)
        records.append(result.record)
        if result.skipped:
            result.record["skipped"] = result.skipped
            print(f"eval: {dataset}: skipped {result.skipped}", file=sys.stderr)
        if result.predictions is not None:
            predictions.append(result.predictions)
        if "plot" in result.extra:
            print(f"eval: robustness plot: {result.extra['plot']}", file=sys.stderr)
        if task != "robustness" and task != "retrieval":
            classes = evaluator.eval_set(dataset, "test").classnames or []
            chance[result.record["dataset"]] = 1 / len(classes) if classes else float("nan")
    write_results(out, records, predictions, chance)
    print(markdown_table(records, chance))
    print(f"results: {out} (and results.md, results.parquet{', predictions.parquet' if predictions else ''})")
    return 0


def plan(tasks: list[str], datasets: str, data_dir: str | None) -> list[tuple[str, str]]:
    """(task, dataset) pairs to run. `all` expands to the offline tasks a task applies to; a named pair that
    cannot work (retrieval on a classification set) fails when it runs, with the reason."""
    from eval.tasks import KINDS, SHIFT_TASKS, available_tasks

    names = [d for d in datasets.split(",") if d]
    pairs = []
    for task in tasks:
        if task == "robustness":
            pairs.append((task, "shift" if names == ["all"] else ",".join(names)))
            continue
        for name in names:
            if name != "all":
                pairs.append((task, name))
                continue
            for offline in available_tasks(data_dir):
                kind = KINDS.get(offline)
                if (task == "retrieval") == (kind == "retrieval") and offline not in SHIFT_TASKS:
                    pairs.append((task, offline))
    return pairs


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
