"""Build the corpus: curate a candidate pool against the query list, then download the selected pairs into shards.

    wit build --pool DIR/pool.parquet --queries q.parquet --out OUT [--cap 20000] [--balance paper|metaclip] [--seed 0]
    ray job submit --working-dir . -- python pipelines/build_wit.py --pool ... --queries ... --out ...

Curation (wit_builder/curate.py): normalise -> language id (lid.176) -> match -> dedup by url -> count -> attribute ->
balance, on Ray Data (an actor pool for language id and matching) or in this process with --local; the same stage
list either way. Then (unless --stop-after curate) img2dataset downloads the selected pairs into WebDataset shards
(a Ray task per shard, or local processes with --local). The folder OUT (local or s3://; its layout:
wit_builder/layout.py) holds curated/, accounting/ (one row per pool row: selected, kept, filtered or failed, with
its reason), query_counts.parquet, shards/ and manifest.json; `wit sql OUT` queries them. A rerun of the same
command resumes: a finished curate stage and finished shards are reused; other settings into the same OUT are refused.
With --dedup, `wit dedup OUT --remove` follows the download (near-duplicate images out; docs/dedup.md).
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import functools
import logging
import sys

from wit_builder.config import BALANCE_MODES, STAGES, BuildConfig, CurateConfig

HELP = "build the corpus: curate a candidate pool against the query list, then download the pairs into shards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = CurateConfig()
    parser.add_argument(
        "--pool",
        required=True,
        nargs="+",
        help="pool file(s) or folder(s): .parquet, .csv, .tsv, .jsonl; local or s3://",
    )
    parser.add_argument(
        "--queries", required=True, help="the Parquet from `wit queries`, or a text file, one query per line"
    )
    parser.add_argument("--out", required=True, help="output folder (local or s3://)")
    parser.add_argument("--cap", type=int, default=d.cap, help=f"at most this many pairs per query (paper: {d.cap:,})")
    parser.add_argument(
        "--balance",
        choices=BALANCE_MODES,
        default=d.balance,
        help="paper: hard cap per attributed query (default); metaclip: MetaCLIP's sampling",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice (default 0)")
    parser.add_argument("--languages", default=",".join(d.languages), help="comma-separated codes to keep (default en)")
    parser.add_argument(
        "--lang-threshold",
        type=float,
        default=d.lang_threshold,
        help=f"minimum lid.176 score of the top language (default {d.lang_threshold})",
    )
    parser.add_argument("--url-col", default=d.url_col, help="url column of the pool (default url)")
    parser.add_argument("--text-col", default=d.text_col, help="text column of the pool (default text)")
    parser.add_argument("--uid-col", default=d.uid_col, help="uid column; absent -> '<file>:<row>' (default uid)")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=d.max_chars,
        help=f"cut stored captions to this length; matching sees the whole text (default {d.max_chars})",
    )
    parser.add_argument(
        "--stop-after",
        choices=STAGES,
        default="download",
        help="last stage to run: curate (select pairs only) or download (default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="actors per stateful stage (language id, match); default: the cluster's CPUs",
    )
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per batch (default 4096)")
    parser.add_argument("--local", action="store_true", help="run in this process without Ray (same output)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild OUT from scratch (curation and shards), e.g. after the pool or query list changed",
    )
    parser.add_argument(
        "--dedup",
        action="store_true",
        help="after the download, run `wit dedup OUT --remove`: near-duplicate images of the corpus are taken out "
        "(each cluster keeps its first sample; accounting reason near_duplicate), with a detector trained and "
        "calibrated on the corpus; see docs/dedup.md (local OUT only)",
    )
    g = parser.add_argument_group("download (img2dataset; defaults: wit_builder/download/img2dataset_job.py)")
    g.add_argument(
        "--allow-hosts",
        default=None,
        help="HOST[:PORT],... exempt from the address policy (e.g. a loopback demo web 127.0.0.1:8777)",
    )
    g.add_argument("--image-size", type=int, default=None, help="shorter side after resize (default 256)")
    g.add_argument("--resize-mode", default=None, help="img2dataset resize mode (default keep_ratio)")
    g.add_argument(
        "--min-image-size", type=int, default=None, help="drop images with a smaller shorter side (default 0)"
    )
    g.add_argument("--shard-size", type=int, default=None, help="pairs per shard (default 10000)")
    g.add_argument(
        "--processes",
        type=int,
        default=None,
        help="download processes with --local / --distributor multiprocessing (default: CPU count)",
    )
    g.add_argument("--threads", type=int, default=None, help="fetch threads per process or Ray task (default 32)")
    g.add_argument("--timeout", type=float, default=None, help="seconds a socket may wait for data (default 10)")
    g.add_argument(
        "--request-deadline",
        type=float,
        default=None,
        help="seconds one request may take in all, connect to last byte, redirects included (default 30)",
    )
    g.add_argument("--retries", type=int, default=None, help="extra attempts for transient failures (default 2)")
    g.add_argument(
        "--shard-retries",
        type=int,
        default=None,
        help="reruns of a shard that failed as a whole or whose worker died or got stuck (default 1)",
    )
    g.add_argument(
        "--distributor",
        choices=("multiprocessing", "ray"),
        default=None,
        help="ray: a task per shard over the cluster (default); multiprocessing: this machine (--local)",
    )


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    curate = CurateConfig(
        url_col=args.url_col,
        text_col=args.text_col,
        uid_col=args.uid_col,
        max_chars=args.max_chars,
        languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
        lang_threshold=args.lang_threshold,
        cap=args.cap,
        balance=args.balance,
        seed=args.seed,
    )
    download = None
    if args.stop_after == "download":
        from wit_builder.download.img2dataset_job import config_from_dict

        values = {
            "image_size": args.image_size,
            "resize_mode": args.resize_mode,
            "min_image_size": args.min_image_size,
            "number_sample_per_shard": args.shard_size,
            "processes_count": args.processes,
            "thread_count": args.threads,
            "timeout": args.timeout,
            "request_deadline": args.request_deadline,
            "retries": args.retries,
            "shard_retries": args.shard_retries,
            "distributor": args.distributor or ("multiprocessing" if args.local else "ray"),
        }
        if args.allow_hosts:
            values["allow_hosts"] = tuple(h.strip() for h in args.allow_hosts.split(",") if h.strip())
        download = config_from_dict({k: v for k, v in values.items() if v is not None})
    return BuildConfig(
        pool=tuple(args.pool),
        queries=args.queries,
        out=args.out.rstrip("/"),
        curate=curate,
        stop_after=args.stop_after,
        workers=args.workers,
        batch_size=args.batch_size,
        local=args.local,
        force=args.force,
        download=download,
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if getattr(args, "dedup", False) and args.stop_after != "download":
        from wit_builder.errors import WitError

        raise WitError("--dedup needs the download stage: drop --stop-after curate, or run `wit dedup OUT` later")
    print(main(config_from_args(args))["report"])
    if getattr(args, "dedup", False):
        from eval.overlap.dedup import DedupOptions
        from pipelines.dedup import run_dedup

        print(run_dedup(args.out.rstrip("/"), DedupOptions(remove=True)))
    return 0


def main(cfg: BuildConfig) -> dict:
    """Run the build (on Ray unless cfg.local); returns the manifest (with a printable 'report')."""
    from wit_builder.build import build, download_config

    if cfg.local:
        ray_download = cfg.stop_after == "download" and download_config(cfg).distributor == "ray"
        return build(cfg, before_download=_init_ray if ray_download else None)
    curator = functools.partial(curate_on_ray, workers=cfg.workers, batch_size=cfg.batch_size)
    return build(cfg, curator=curator, engine="ray", before_download=_init_ray)


def _init_ray() -> None:
    from pipelines import ray_env

    ray_env.init_local()


def curate_on_ray(folder, files, queries, cfg, *, workers=None, batch_size=4096) -> dict:
    """The curation stages on Ray Data: a read task per pool file, then `_ray.run_stages`; writes the folder's
    accounting, curated and query_counts tables. Same signature and outputs as wit_builder.curate.curate_local."""
    import time

    import ray

    from pipelines import _ray
    from wit_builder import layout
    from wit_builder.curate import accounting_table, curated_table, curation_stages, query_counts, query_counts_table
    from wit_builder.errors import WitError
    from wit_builder.schema import CURATED_SCHEMA, QUERY_COUNTS_SCHEMA

    _init_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = True
    # The grouped stages (dedup by url, cap by query) shuffle only compact rows; the sort-based shuffle runs as plain
    # tasks, while the default hash shuffle starts aggregator actors (~13 s of fixed cost per shuffle measured here).
    ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    cpus = _ray.cluster_cpus()
    workers = workers or cpus
    n = len(queries)
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    ds = ds.map_batches(
        functools.partial(_read_files, cfg=cfg, rows=batch_size),
        batch_format="pyarrow",
        batch_size=1,
        num_cpus=_ray.TASK_CPUS,
    )
    final, values, timings = _ray.run_stages(
        ds, curation_stages(queries, cfg), batch_size=batch_size, workers=workers, partitions=max(1, 2 * cpus)
    )
    rows_in = final.count()
    if rows_in == 0:
        raise WitError(f"the pool has no rows ({len(files)} file(s), all empty): check --pool")
    t0 = time.perf_counter()
    queries_ref = _ray.shared(queries)
    _ray.map_stage(final, _ray.with_shared(accounting_table, queries=queries_ref), batch_size=batch_size).write_parquet(
        **_target(folder.accounting)
    )
    curated = _ray.map_stage(
        final,
        _ray.with_shared(functools.partial(curated_table, max_chars=cfg.max_chars), queries=queries_ref),
        batch_size=batch_size,
    )
    curated.write_parquet(**_target(folder.curated))
    if not folder.has_curation():  # nothing selected: an empty table still says so, with its schema
        folder.write_table(CURATED_SCHEMA.empty_table(), folder.part(layout.CURATED), CURATED_SCHEMA)
    counts = _ray.sum_arrays(
        final, functools.partial(query_counts, n=n, max_chars=cfg.max_chars), 3 * n + 1, batch_size=batch_size
    )
    folder.write_table(query_counts_table(queries, values["matched"], counts), folder.query_counts, QUERY_COUNTS_SCHEMA)
    timings["write"] = time.perf_counter() - t0
    return {"rows_in": rows_in, "timings": timings, "workers": workers, "texts_cut": int(counts[-1])}


def _read_files(batch, cfg, rows):
    """Read one pool file and yield it in blocks of `rows` rows (so a single big file still spreads over workers)."""
    from wit_builder.pool.read import read_pool_file

    for path in batch["path"].to_pylist():
        table = read_pool_file(path, cfg)
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows)


def _target(uri: str) -> dict:
    """{path, filesystem} for Ray's writers, resolved by storage (local or s3://)."""
    from wit_builder import storage

    fs, path = storage.filesystem(uri)
    return {"path": path, "filesystem": fs}


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
