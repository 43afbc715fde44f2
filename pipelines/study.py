"""The paper's studies at demo scale (docs/studies.md):

    wit study prompts --checkpoint RUN [--data-dir EVAL] [--tasks digits,emoji-group] --out STUDY
        zero-shot top-1 with the bare class name, "a photo of a {c}." and the 80-prompt ensemble (Figure 4)
    wit study fewshot --checkpoint RUN --out STUDY [--shots 1,2,4,8,16] [--seeds 0,1,2]
        few-shot linear probes against zero-shot, and how many shots zero-shot is worth (Figure 6)
    wit study prompts --data OUT --out STUDY [--epochs 1]
        first trains a tiny-vit on the `wit build` folder OUT into STUDY/run, then studies it
    wit study scaling --data OUT --out STUDY [--widths tiny-vit-w32,tiny-vit-w64,tiny-vit-w128] [--seeds 0]
        trains each width on OUT (same data, seed and schedule) into STUDY/runs/NAME, one after the other on this
        Ray cluster (or all at once with --parallel), and plots zero-shot error against training compute with the
        fitted log-log line (Figure 9)
    wit study objectives --data OUT --out STUDY [--objectives contrastive,bow,caption] [--points 4] [--seeds 0]
        trains the same model (--model, default tiny-vit) with each objective on OUT into STUDY/runs/OBJECTIVE, keeps
        --points checkpoints along each run and plots their balanced zero-shot top-1 against images seen (Figure 2)

CKPT/RUN as for `wit eval` (a `wit train` run folder, or a checkpoint file with --model). --tasks defaults to every
classification task `wit eval data` wrote (the shift family aside). STUDY gets results.parquet (one row per task, arm,
x, metric and seed; every study's rows that were run into it: `wit sql STUDY "SELECT * FROM results"`), summary.md
(a section per study beside the paper's finding) and one PNG per study. On a cluster, submit this script with
`ray job submit -- python pipelines/study.py objectives --parallel ...`: with --parallel the arms of a training study
train at once as concurrent Ray Train runs (each driven from a Ray task), then the job evaluates them; without it they
train one after the other. A rerun reuses the finished runs and only evaluates them again.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import sys

DEFAULT_SHOTS = "1,2,4,8,16"
DEFAULT_SEEDS = {"fewshot": "0,1,2", "scaling": "0", "objectives": "0"}
DEFAULT_WIDTHS = "tiny-vit-w32,tiny-vit-w64,tiny-vit-w128"
DEFAULT_OBJECTIVES = "contrastive,bow,caption"
DEFAULT_POINTS = 4
HELP = (
    "the paper's studies at demo scale: objectives (Figure 2), prompts (Figure 4), fewshot (Figure 6), "
    "scaling (Figure 9)"
)
STUDIES = ("objectives", "prompts", "fewshot", "scaling")
TRAINING_STUDIES = ("objectives", "scaling")  # the studies that train their own models on --data


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
    parser.add_argument(
        "--seeds",
        help="fewshot: one probe per seed and k (default 0,1,2); scaling, objectives: one run per seed and arm (0)",
    )
    parser.add_argument(
        "--widths",
        help=f"scaling: comma-separated models to train (default {DEFAULT_WIDTHS})",
    )
    parser.add_argument(
        "--objectives",
        help=f"objectives: comma-separated training objectives (default {DEFAULT_OBJECTIVES}), each trained on --data",
    )
    parser.add_argument(
        "--points",
        type=int,
        default=DEFAULT_POINTS,
        help=f"objectives: checkpoints evaluated along each run (default {DEFAULT_POINTS}; the last is the run's end)",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="objectives, scaling: train the arms at once as concurrent Ray Train runs on the cluster (it needs a CPU "
        "per arm's worker plus one for Ray Data); by default one after another",
    )
    parser.add_argument("--epochs", type=int, default=1, help="with --data: training epochs (default 1)")
    parser.add_argument("--batch-size", type=int, default=64, help="with --data: the training batch (default 64)")


def run(args: argparse.Namespace) -> int:
    from eval.model import load_eval_model
    from eval.run import EvalOptions, Evaluator

    study = check_study(args.study)
    if study == "scaling":
        return run_scaling(args)
    if study == "objectives":
        return run_objectives(args)
    seeds = int_list(args.seeds or DEFAULT_SEEDS["fewshot"], "--seeds")
    shots = int_list(args.shots or DEFAULT_SHOTS, "--shots")
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


def known_names(text: str, flag: str, kind: str, known) -> list[str]:
    """The comma-separated names in `text` (at least one), each of `known`; else a WitError listing the known ones."""
    from wit_builder.errors import WitError

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise WitError(
            f"{flag} {text!r}: unknown {kind} {', '.join(unknown) or '(none)'}: choose from {', '.join(known)}"
        )
    return names


def check_widths(text: str) -> list[str]:
    """The registered model names in --widths."""
    from trainer.config import MODELS

    return known_names(text, "--widths", "model", MODELS)


def corpus_samples(data: str) -> int:
    """The samples of a `wit build` folder or shards, as the trainer counts them (reads tar headers, starts no Ray)."""
    from trainer.ray_train import plan
    from trainer.run_config import TrainConfig

    return plan(TrainConfig(data=data, model="tiny-vit", out="", batch_size=1))["samples"]


def study_run(cfg, study: str) -> tuple[str, dict]:
    """Train `cfg` (a training study's arm) into cfg.out, or reuse a finished run there with the same settings.
    Returns the run folder and its summary (samples seen, train_s; train_s is nan for a reused run)."""
    from trainer.ray_train import SUMMARY_FILE, run_path, train
    from trainer.run_config import RESUME_KEYS, TrainConfig
    from wit_builder import storage
    from wit_builder.errors import WitError

    out = cfg.out
    done, config = run_path(out, SUMMARY_FILE), run_path(out, "config.json")
    if storage.exists(config):
        saved, defaults = storage.read_json(config).get("config", {}), TrainConfig.defaults()
        same = all(saved.get(k, defaults.get(k)) == v for k, v in cfg.to_dict().items() if k in RESUME_KEYS)
        if not (same and storage.exists(done)):
            state = "a run with other settings" if not same else "an unfinished run"
            raise WitError(f"{out} holds {state}: remove it, or give the study a new --out")
        print(f"study {study}: reusing the finished run {out}", file=sys.stderr)
        summary = storage.read_json(done)
        return out, {**summary, "train_s": summary.get("wall_s", float("nan"))}  # runs before wall_s was kept: nan
    arm = cfg.model if study == "scaling" else f"{cfg.model} --objective {cfg.objective}"
    print(f"study {study}: training {arm} (seed {cfg.seed}) for {cfg.epochs} epoch(s) into {out} ...", file=sys.stderr)
    summary = train(cfg)
    return out, {**summary, "train_s": summary.get("wall_s", float("nan"))}


def arm_config(args: argparse.Namespace, arm: str, seed: int, **settings):
    """The TrainConfig of one arm: --data, --epochs, --batch-size, --tokenizer, 10 warm-up steps and `seed`, into
    STUDY/runs/ARM (ARM-seedS beyond seed 0), with the arm's own `settings` (model, objective, ...)."""
    from trainer.run_config import TrainConfig

    return TrainConfig(
        data=args.data,
        out=f"{args.out.rstrip('/')}/runs/{arm}" + (f"-seed{seed}" if seed else ""),
        epochs=args.epochs,
        batch_size=args.batch_size,
        warmup=10,
        seed=seed,
        tokenizer=args.tokenizer,
        **settings,
    )


def train_arms(cfgs: list, study: str, parallel: bool) -> list[tuple[str, dict]]:
    """Train (or reuse) every arm: one after the other, or with `parallel` as concurrent Ray Train runs, each driven
    from a Ray task of the cluster (a WitError when the cluster lacks the CPUs for all their workers and Ray Data).
    Returns (run folder, summary) per arm, in order."""
    from wit_builder.errors import WitError

    if not parallel or len(cfgs) < 2:
        return [study_run(cfg, study) for cfg in cfgs]
    from pipelines import ray_env

    ray = ray_env.init_local()
    cpus = float(ray.cluster_resources().get("CPU", 0))
    workers = sum(cfg.workers * cfg.cpus_per_worker for cfg in cfgs)
    if workers + 1 > cpus:
        raise WitError(
            f"--parallel trains {len(cfgs)} arms at once: their workers need {workers:g} CPUs and Ray Data at least "
            f"1 more, and this Ray cluster has {cpus:g}: add nodes, or drop --parallel to train them one after another"
        )
    print(f"study {study}: training {len(cfgs)} arms in parallel as Ray Train runs ...", file=sys.stderr)
    task = ray.remote(num_cpus=0)(_study_run_task)
    return [tuple(done) for done in ray.get([task.remote(cfg.to_dict(), study) for cfg in cfgs])]


def _study_run_task(cfg: dict, study: str) -> tuple[str, dict]:
    """`study_run` in a Ray task (its TrainConfig travels as a dict)."""
    from trainer.run_config import TrainConfig

    return study_run(TrainConfig.from_dict(cfg), study)


def check_training_study(args: argparse.Namespace, study: str) -> list[str]:
    """The evaluation tasks of a study that trains its own models; a WitError for --checkpoint, no --data or no
    tasks."""
    from wit_builder.errors import WitError

    if args.checkpoint or not args.data:
        raise WitError(
            f"the {study} study trains its own models: give --data OUT (a `wit build` folder), no --checkpoint"
        )
    tasks = study_tasks(args.tasks, args.data_dir)
    if not tasks:
        raise WitError("no classification tasks to evaluate: run `wit eval data` first, or give --data-dir or --tasks")
    return tasks


def run_scaling(args: argparse.Namespace) -> int:
    """`wit study scaling`: train every width on the same data, seed and schedule, evaluate zero-shot error, write the
    rows, summary and plot."""
    from eval.model import load_eval_model
    from eval.run import EvalOptions, Evaluator
    from eval.studies.scaling import check_corpus, gflops_per_sample, scaling_rows
    from trainer.config import get_config

    widths = check_widths(args.widths or DEFAULT_WIDTHS)
    seeds = int_list(args.seeds or DEFAULT_SEEDS["scaling"], "--seeds")
    tasks = check_training_study(args, "scaling")
    check_corpus(corpus_samples(args.data), args.batch_size, args.data, "scaling")
    options = EvalOptions(data_dir=args.data_dir, progress=sys.stderr.isatty())
    arms = [(seed, name) for seed in seeds for name in widths]
    cfgs = [arm_config(args, name, seed, model=name) for seed, name in arms]
    rows = []
    for (seed, name), (run_folder, summary) in zip(arms, train_arms(cfgs, "scaling", args.parallel)):
        config = get_config(name)
        gflops = gflops_per_sample(config, config.vision.image_size, config.text.context_length)
        evaluator = Evaluator(load_eval_model(run_folder, tokenizer=args.tokenizer), options)
        print(f"study scaling: {name} (seed {seed}): zero-shot on {', '.join(tasks)} ...", file=sys.stderr)
        rows += scaling_rows(evaluator, name, tasks, gflops, int(summary["samples"]), seed, summary["train_s"])
    written = write_study(args.out, "scaling", rows)
    print(summary_text(read_rows(args.out)))
    print(f"study: {', '.join(written)}", file=sys.stderr)
    return 0


def check_objectives(text: str) -> list[str]:
    """The training objectives in --objectives."""
    from trainer.objectives import OBJECTIVES

    return known_names(text, "--objectives", "objective", OBJECTIVES)


def run_objectives(args: argparse.Namespace) -> int:
    """`wit study objectives`: train the same model with each objective on the same data, seed and schedule, keep
    --points checkpoints along each run, evaluate zero-shot at each, write the rows, summary and plot."""
    import math

    from eval.model import EvalModel
    from eval.run import EvalOptions, Evaluator
    from eval.studies.objectives import fact_rows, objective_rows
    from eval.studies.scaling import check_corpus
    from trainer.export import load_run_model
    from trainer.ray_train import checkpoint_dirs, plan
    from trainer.tokenizer import load_tokenizer
    from wit_builder.errors import WitError

    objectives = check_objectives(args.objectives or DEFAULT_OBJECTIVES)
    seeds = int_list(args.seeds or DEFAULT_SEEDS["objectives"], "--seeds")
    if args.points < 1:
        raise WitError(f"--points {args.points}: give at least 1 (the run's end)")
    tasks = check_training_study(args, "objectives")
    check_corpus(corpus_samples(args.data), args.batch_size, args.data, "objectives")
    model = args.model or "tiny-vit"
    options = EvalOptions(data_dir=args.data_dir, progress=sys.stderr.isatty())
    arms = [(seed, objective) for seed in seeds for objective in objectives]
    cfgs = [arm_config(args, o, seed, model=model, objective=o, keep_checkpoints=0) for seed, o in arms]
    total = plan(cfgs[0])["total_steps"]  # the same data, epochs and batch for every arm
    cfgs = [cfg.replace(checkpoint_every=max(1, math.ceil(total / args.points))) for cfg in cfgs]
    rows = []
    for (seed, objective), (run_folder, summary) in zip(arms, train_arms(cfgs, "objectives", args.parallel)):
        for step, _ in checkpoint_dirs(run_folder):
            clip, _ = load_run_model(run_folder, step)
            tokenizer = load_tokenizer(args.tokenizer, clip.context_length)
            evaluator = Evaluator(EvalModel(clip, tokenizer, model, run_folder, step), options)
            print(
                f"study objectives: {objective} (seed {seed}) at step {step}: zero-shot on {', '.join(tasks)} ...",
                file=sys.stderr,
            )
            rows += objective_rows(evaluator, objective, tasks, step * args.batch_size, seed)
        facts = {"train_s": summary["train_s"], "final_loss": summary.get("final_loss") or math.nan}
        rows += fact_rows(objective, seed, int(summary["samples"]), facts)
    written = write_study(args.out, "objectives", rows)
    print(summary_text(read_rows(args.out)))
    print(f"study: {', '.join(written)}", file=sys.stderr)
    return 0


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
    from eval.studies.objectives import plot_objectives
    from eval.studies.prompts import plot_prompts
    from eval.studies.scaling import plot_scaling
    from wit_builder import storage

    folder = out.rstrip("/")
    merged = [r for r in read_rows(folder) if r["task"] != study] + rows
    buffer = io.BytesIO()
    pq.write_table(results_table(merged), buffer)
    storage.write_bytes(f"{folder}/results.parquet", buffer.getvalue())
    storage.write_bytes(f"{folder}/summary.md", summary_text(merged).encode())
    plot = {
        "objectives": plot_objectives,
        "prompts": plot_prompts,
        "fewshot": plot_fewshot,
        "scaling": plot_scaling,
    }[study]
    with tempfile.TemporaryDirectory() as tmp:
        plot(rows, f"{tmp}/plot.png")
        with open(f"{tmp}/plot.png", "rb") as handle:
            storage.write_bytes(f"{folder}/{study}.png", handle.read())
    return [f"{folder}/results.parquet", f"{folder}/summary.md", f"{folder}/{study}.png"]


def summary_text(rows: list[dict]) -> str:
    """summary.md: a section per study present in the rows."""
    from eval.studies import fewshot, objectives, prompts, scaling

    parts = ["# Studies at demo scale\n"]
    if any(r["task"] == objectives.STUDY for r in rows):
        parts.append("## Training objectives (Figure 2)\n\n" + objectives.summary(rows))
    if any(r["task"] == prompts.STUDY for r in rows):
        parts.append("## Prompt engineering and ensembling (Figure 4)\n\n" + prompts.summary(rows))
    if any(r["task"] == fewshot.STUDY for r in rows):
        parts.append("## Zero-shot vs few-shot linear probes (Figure 6)\n\n" + fewshot.summary(rows))
    if any(r["task"] == scaling.STUDY for r in rows):
        parts.append("## Compute scaling (Figure 9)\n\n" + scaling.summary(rows))
    return "\n".join(parts)


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
