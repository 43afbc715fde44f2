"""Run everything that exists end to end on the embedded demo data, and print what happened at each step.

  1. web      build the demo web (real clip art, Tux Paint stamps, emoji) and its candidate pool
  2. serve    serve it on loopback and check a sample of URLs round-trips (exact bytes; dead links 404)
  3. queries  build the query list from the offline sources (WordNet, the enwiki sample, wordfreq)
  4. build    `ray job submit ... python pipelines/build_wit.py` to a local Ray head, as users run it: curate
              (normalise, language, match, balance) then download the kept pairs from the served web into
              WebDataset shards; prints the funnel, the per-query distribution, shards, images/s and failures
  5. train    `ray job submit ... python pipelines/train.py`: a small CLIP (tiny-vit) trained on every shard but the
              last; its loss curve
  6. eval     the offline evaluation tasks (`wit eval data`, plus retrieval on the held-out last shard), then the
              trained model on each: zero-shot and linear-probe accuracy, retrieval recall, next to chance
  7. overlap  the contamination report: which evaluation images are near-duplicates of training images (a detector
              trained on the shards), accuracy on All, Clean and Overlap with its significance test; OUT/overlap

A second run reuses what is up to date and finishes in seconds. Inspect the results with `wit sql OUT/web ...`.
"""

from __future__ import annotations

import argparse
import os
import time

DEMO_CAP = 100  # the paper's cap (20,000 of 400M pairs) scaled to a pool where balancing still shows

HELP = "run the whole pipeline that exists on the embedded demo data and print a summary"


def _default_out() -> str:
    from wit_builder.paths import cache_dir

    return str(cache_dir() / "demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="demo folder (default: $WIT_CACHE/demo)")
    parser.add_argument("--port", type=int, default=8777, help="loopback port of the demo web (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the web's noise (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="images per collection (a quicker, smaller demo)")
    parser.add_argument("--check", type=int, default=500, help="URLs to check by round trip (default %(default)s)")
    parser.add_argument(
        "--cap",
        type=int,
        default=DEMO_CAP,
        help="pairs per query for the demo's balancing (default %(default)s; the paper's 20,000 is "
        "for 400M pairs and would keep everything of a 100k pool)",
    )
    parser.add_argument(
        "--train-epochs", type=int, default=1, help="epochs of the demo's training run (default %(default)s)"
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="at most this many images per split of each offline task, every class kept (a quicker evaluation and "
        "overlap report; default all)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild every step, even when up to date")


STEPS = 7
TRAIN_MODEL = "tiny-vit"  # trains at ~100 samples/s on 2 CPU cores
TRAIN_BATCH = 64


def _step(n: int, title: str) -> float:
    print(f"\n== {n}/{STEPS} {title} ==", flush=True)
    return time.time()


def run(args: argparse.Namespace) -> int:
    from pipelines.web import format_summary
    from wit_builder.web.build import WebConfig, build_web
    from wit_builder.web.serve import serving

    out = args.out or _default_out()
    web_dir = os.path.join(out, "web")
    timings: dict[str, float] = {}

    start = _step(1, "web: build the demo web and its candidate pool")
    web = build_web(
        web_dir, WebConfig(base_url=f"http://127.0.0.1:{args.port}", seed=args.seed, limit=args.limit), force=args.force
    )
    print(format_summary(web))
    timings["web"] = time.time() - start

    started_head = _ensure_head()
    try:
        with serving(web_dir, port=args.port) as base_url:
            start = _step(2, f"serve: {base_url}; check {args.check} URLs round-trip")
            result = _check(web_dir, base_url, args.check, args.seed)
            timings["serve"] = time.time() - start

            start = _step(3, "queries: the query list from WordNet, the enwiki sample and wordfreq")
            queries, queries_rebuilt = _queries(out, args.force)
            timings["queries"] = time.time() - start

            start = _step(4, f"build: ray job submit pipelines/build_wit.py (cap {args.cap:,} per query)")
            inputs_changed = args.force or web.rebuilt or queries_rebuilt
            manifest = _build(out, web_dir, args.port, args.cap, force=inputs_changed)
            timings["build"] = time.time() - start

            start = _step(5, f"train: ray job submit pipelines/train.py ({TRAIN_MODEL}, {args.train_epochs} epoch(s))")
            trained = _train(out, manifest["out"], args.train_epochs, force=inputs_changed or args.force)
            timings["train"] = time.time() - start
        evaluated = None
        if trained:
            start = _step(6, "eval: zero-shot, linear probe and retrieval on the offline tasks")
            evaluated = _evaluate(
                out, manifest["out"], trained["run"], force=inputs_changed or args.force, limit=args.eval_limit
            )
            timings["eval"] = time.time() - start
            start = _step(7, "overlap: near-duplicates of the evaluation images in the training shards")
            evaluated["overlap"] = _overlap(out, trained["data"], force=inputs_changed or args.force)
            timings["overlap"] = time.time() - start
    finally:
        if started_head:
            from pipelines.ray_cluster import stop_head

            print("\nstopping the Ray head this demo started", flush=True)
            stop_head()
    _print_summary(out, web_dir, web, result, queries, manifest, trained, evaluated, timings)
    return 0


def _check(web_dir: str, base_url: str, n: int, seed: int):
    """Fetch a seeded sample of the pool's URLs: live ones must return their file's bytes, dead links 404."""
    import pyarrow.parquet as pq

    from wit_builder.errors import WitError
    from wit_builder.web.check import check_round_trip, sample_rows

    rows = pq.read_table(os.path.join(web_dir, "pool.parquet"), columns=["url", "image", "noise"]).to_pylist()
    result = check_round_trip(sample_rows(rows, n, seed), web_dir, base_url)
    for outcome, count in sorted(result.items()):
        print(f"  {outcome:<28}{count:>6,}")
    bad = {k: v for k, v in result.items() if k not in ("ok", "dead_link_404")}
    if bad:
        raise WitError(f"the served web does not answer as its pool says: {bad}")
    return result


def _print_summary(out, web_dir, web, result, queries, manifest, trained, evaluated, timings) -> None:
    build_dir = manifest["out"]
    print("\n== summary ==")
    print(f"  web      {web.pairs:>9,} candidate pairs, {web.images:,} images, {web.urls:,} URLs   {web_dir}")
    print(
        f"  serve    {result.get('ok', 0):>9,} URLs returned their exact bytes, "
        f"{result.get('dead_link_404', 0):,} dead links answered 404"
    )
    print(f"  queries  {queries:>9,} queries   {out}/queries.parquet")
    reasons = manifest["counts"]["reasons"]
    download = manifest["counts"]["download"]
    print(
        f"  curate   {reasons.get('selected', 0):>9,} pairs selected for download, "
        f"{sum(reasons.values()) - reasons.get('selected', 0):,} filtered with a reason"
    )
    rate = f"{download['images_per_s']:.1f} images/s" if download.get("images_this_run") else "finished shards reused"
    print(
        f"  download {download['kept']:>9,} images in {download['shards']} shard(s), {download['failed']:,} failed "
        f"({rate})   {build_dir}/shards"
    )
    if trained:
        print(f"  train    {trained['line']}")
    if evaluated:
        print(f"  eval     {evaluated['line']}")
    if evaluated and evaluated.get("overlap"):
        print(f"  overlap  {evaluated['overlap']}")
    print("  time     " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    print(f'\nTry: wit sql {web_dir} "SELECT source, count(*) AS pairs FROM pool GROUP BY 1 ORDER BY 2 DESC LIMIT 10"')
    print(
        f'     wit sql {build_dir} "SELECT status, reason, count(*) AS n FROM accounting GROUP BY ALL ORDER BY n DESC"'
    )


def _queries(out: str, force: bool) -> tuple[int, bool]:
    """Build the query list unless an up-to-date one is there; print its per-source totals. Returns (rows, rebuilt)."""
    from pipelines import build_queries
    from wit_builder.queries.build import read_metadata, summary
    from wit_builder.queries.config import QueryConfig

    config = QueryConfig(out=os.path.join(out, "queries.parquet"))
    meta = None
    if not force and os.path.exists(config.out):
        try:
            meta = read_metadata(config.out)
        except Exception:  # noqa: BLE001 - an unreadable old file is simply rebuilt
            meta = None
        if meta is not None and meta.get("config") != config.as_dict():
            meta = None
        if meta is not None:
            print(f"queries: {config.out} is up to date; --force rebuilds it")
    rebuilt = meta is None
    if rebuilt:
        meta = build_queries.main(config)
    print(summary(meta["report"], meta["rows"]))
    return meta["rows"], rebuilt


def _ensure_head() -> bool:
    """Start a local Ray head unless one answers; True when this call started it (and so must stop it)."""
    from pipelines.ray_cluster import head_running, start_head

    if head_running():
        print("using the Ray head already running on this machine")
        return False
    print("starting a local Ray head on 127.0.0.1 (wit ray start)", flush=True)
    start_head()
    return True


def _build(out: str, web_dir: str, port: int, cap: int, force: bool) -> dict:
    """Submit pipelines/build_wit.py with `ray job submit`, exactly as a user does; its output streams here.
    `force` rebuilds the corpus from scratch (the web or the query list changed since the last demo)."""
    import subprocess
    from pathlib import Path

    import pipelines
    from pipelines.ray_cluster import _ray_cli, cli_env
    from wit_builder.errors import WitError

    repo = Path(pipelines.__file__).resolve().parents[1]
    build_dir = os.path.join(out, "build" if cap == DEMO_CAP else f"build-cap{cap}")
    command = [
        _ray_cli(),
        "job",
        "submit",
        "--working-dir",
        str(repo),
        "--",
        "python",
        "pipelines/build_wit.py",
        "--pool",
        os.path.join(web_dir, "pool.parquet"),
        "--queries",
        os.path.join(out, "queries.parquet"),
        "--out",
        build_dir,
        "--cap",
        str(cap),
        "--allow-hosts",
        f"127.0.0.1:{port}",
        "--shard-size",
        "1000",
        *(["--force"] if force else []),
    ]
    print("$ ray job submit --working-dir . -- python pipelines/build_wit.py " + " ".join(command[8:]), flush=True)
    if subprocess.run(command, env=cli_env()).returncode != 0:
        raise WitError(
            f"the build job failed (its log is above): rerun `wit demo` to resume into {build_dir}, "
            "or `wit demo --force` to rebuild everything from scratch"
        )
    from wit_builder.layout import BuildFolder

    manifest = BuildFolder(str(build_dir)).read_manifest()
    manifest["out"] = build_dir
    return manifest


def _train(out: str, build_dir: str, epochs: int, force: bool) -> dict | None:
    """Train TRAIN_MODEL on every finished shard but the last with `ray job submit` (as a user runs it), then
    measure image-text retrieval on the held-out last shard. Reuses a finished run unless `force`."""
    import shutil
    import subprocess
    from pathlib import Path

    import pipelines
    from pipelines.ray_cluster import _ray_cli, cli_env
    from wit_builder import storage
    from wit_builder.errors import WitError
    from wit_builder.layout import BuildFolder

    folder = BuildFolder(str(build_dir))
    shards = folder.finished_shards()
    sizes = folder.read_sizes()
    train_shards, held_out = (shards[:-1], shards[-1]) if len(shards) >= 2 else (shards, None)
    samples = sum(sizes.get(f"{name}.tar", 0) for name in train_shards)
    if samples < 8:
        print(f"train: skipped: {samples} sample(s) in the training shards, too few to train on")
        return None
    batch = min(TRAIN_BATCH, samples)
    first, last = train_shards[0], train_shards[-1]
    data = f"{folder.shards}/{first}.tar" if first == last else f"{folder.shards}/{{{first}..{last}}}.tar"
    run = os.path.join(out, f"run-{TRAIN_MODEL}")
    done = storage.exists(f"{run}/summary.json")
    if force and os.path.isdir(run):
        shutil.rmtree(run)
        done = False
    if done:
        print(f"train: {run} is up to date (a finished run); --force trains again")
    else:
        repo = Path(pipelines.__file__).resolve().parents[1]
        resume = ["--resume"] if os.path.exists(os.path.join(run, "config.json")) else []
        args = [
            "--data",
            data,
            "--model",
            TRAIN_MODEL,
            "--out",
            run,
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch),
            "--warmup",
            "20",
            "--checkpoint-every",
            "50",
            "--log-every",
            "1",  # every step: the loss curve below has points even for a run of one step
            *resume,
        ]
        command = [_ray_cli(), "job", "submit", "--working-dir", str(repo), "--", "python", "pipelines/train.py", *args]
        print("$ ray job submit --working-dir . -- python pipelines/train.py " + " ".join(args), flush=True)
        if subprocess.run(command, env=cli_env()).returncode != 0:
            raise WitError(f"the training job failed (its log is above): rerun `wit demo` to resume {run}")
    summary = storage.read_json(f"{run}/summary.json")
    _print_loss_curve(run, batch)
    line = (
        f"{summary.get('steps', 0):,} steps of {TRAIN_MODEL}, final loss {summary.get('final_loss', float('nan')):.3f}, "
        f"{summary.get('samples_per_s_run', 0):.0f} samples/s"
    )
    return {"line": line + f"   {run}", "run": run, "data": data}


def _evaluate(out: str, build_dir: str, run: str, force: bool, limit: int | None = None) -> dict:
    """Write the offline tasks (and demo-retrieval from the held-out last shard) once, at most `limit` images per
    split, then evaluate the trained model on every one: zero-shot and linear probe for the classification tasks,
    recall for retrieval. Tasks written with another limit are written again."""
    import json
    import sys

    from eval.model import load_eval_model
    from eval.report import write_results
    from eval.run import EvalOptions, Evaluator
    from eval.tasks import KINDS, SHIFT_TASKS, available_tasks, build_tasks
    from pipelines.evaluate import held_out_shard
    from wit_builder.layout import BuildFolder

    data_dir = os.path.join(out, "eval-data")
    index = os.path.join(data_dir, "tasks.json")
    written = json.loads(open(index).read()) if os.path.exists(index) else {}
    rewrite = force or not written or any(t.get("limit") != limit for t in written.values())
    if rewrite:
        if written and not force:
            print(f"eval data: {data_dir} was written with another --eval-limit; writing it again")
        held_out = len(BuildFolder(build_dir).finished_shards()) >= 2  # else training saw every shard
        build_tasks(
            data_dir, None, progress=True, shards=[held_out_shard(build_dir)] if held_out else None, limit=limit
        )
    else:
        print(f"eval data: {data_dir} is up to date; --force writes it again")
    saved = os.path.join(out, "eval", "demo.json")
    run_summary = os.path.join(run, "summary.json")
    if not rewrite and os.path.exists(saved) and os.path.getmtime(saved) >= os.path.getmtime(run_summary):
        done = json.loads(open(saved).read())
        print(done["table"])
        print(f"eval: {out}/eval is up to date (the run has not changed); --force evaluates again")
        return done
    model = load_eval_model(run)
    options = EvalOptions(data_dir=data_dir, per_example=True, progress=sys.stderr.isatty())
    evaluator = Evaluator(model, options)
    records, rows, predictions = [], [], []
    for name in available_tasks(data_dir):
        if name in SHIFT_TASKS:
            continue
        if KINDS.get(name) == "retrieval":
            result = evaluator.retrieval(name).record
            records.append(result)
            n = len(evaluator.features(name, "test").keys)
            m = result["metrics"]
            rows.append(
                (
                    name,
                    f"{n:,} images",
                    "-",
                    "-",
                    f"{100 * m['text_retrieval_recall@1']:.1f} / {100 * m['image_retrieval_recall@1']:.1f}",
                    f"{100 / max(n, 1):.2f}",
                )
            )
            continue
        zs_result, lp_result = evaluator.zeroshot(name), evaluator.linear_probe(name)
        zs, lp = zs_result.record, lp_result.record
        records += [zs, lp]
        predictions += [zs_result.predictions, lp_result.predictions]
        k = len(evaluator.eval_set(name, "test").classnames)
        n = len(evaluator.features(name, "test").keys)
        rows.append(
            (
                name,
                f"{k} classes, {n:,} test",
                f"{100 * zs['metrics']['acc1']:.1f}",
                f"{100 * lp['metrics']['lp_acc1']:.1f}",
                "-",
                f"{100 / k:.1f}",
            )
        )
    write_results(os.path.join(out, "eval", "results.json"), records, predictions)
    header = ("task", "test set", "zero-shot top-1 %", "linear probe top-1 %", "R@1 i->t / t->i %", "chance %")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    table = "\n".join(
        "  " + "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [header, *rows]
    )
    print(table)
    zs_rows = [r for r in rows if r[2] != "-"]
    above = sum(float(r[2]) > float(r[5]) for r in zs_rows)
    print(f'results: {out}/eval/results.json (wit sql {out}/eval "SELECT * FROM results")')
    done = {
        "table": table,
        "line": f"zero-shot above chance on {above} of {len(zs_rows)} tasks   {out}/eval/results.json",
    }
    with open(saved, "w") as handle:
        json.dump(done, handle)
    return done


def _overlap(out: str, train_data: str, force: bool) -> str:
    """The overlap report of the shards the demo trained on against the classification tasks, with the zero-shot
    predictions of step 6 (OUT/overlap). Reused while it is newer than the evaluation."""
    import json

    import pyarrow.parquet as pq

    from eval.overlap.run import OverlapOptions, overlap_report
    from pipelines.overlap import summary_table

    report = os.path.join(out, "overlap")
    results = os.path.join(out, "eval", "results.json")
    saved = os.path.join(report, "summary.json")
    if not force and os.path.exists(saved) and os.path.getmtime(saved) >= os.path.getmtime(results):
        summary = json.loads(open(saved).read())
        print(summary_table(summary))
        print(f"overlap: {report} is up to date (the evaluation has not changed); --force makes it again")
    else:
        predictions = pq.read_table(os.path.join(out, "eval", "predictions.parquet"), columns=["dataset", "task"])
        names = sorted({d for d, t in zip(*predictions.to_pydict().values()) if t == "zeroshot"})
        options = OverlapOptions(data_dir=os.path.join(out, "eval-data"))
        summary = overlap_report(train_data, ",".join(names), report, results, options)
        print(summary_table(summary))
    flagged = {name: o["overlap_percent"] for name, o in summary["overlap"].items()}
    worst = max(flagged, key=lambda n: flagged[n] or 0) if flagged else "-"
    return (
        f"{sum(o['overlap'] for o in summary['overlap'].values()):,} of "
        f"{sum(o['n'] for o in summary['overlap'].values()):,} evaluation images also in training (most: {worst} "
        f"{flagged.get(worst) or 0:.1f} %)   {report}/index.html"
    )


def _print_loss_curve(run: str, batch: int) -> None:
    """The loss at a few points of the run (from RUN/metrics.jsonl), next to the loss of guessing: ln(batch)."""
    import json
    import math

    from wit_builder import storage

    lines = [json.loads(x) for x in storage.read_bytes(f"{run}/metrics.jsonl").decode().splitlines() if x.strip()]
    if not lines:
        return
    picks = sorted({round(i * (len(lines) - 1) / 4) for i in range(5)})
    curve = ", ".join(f"step {lines[i]['step']}: {lines[i]['loss']:.3f}" for i in picks)
    print(f"loss curve: {curve} (chance: ln {batch} = {math.log(batch):.3f})")
