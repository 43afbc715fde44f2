"""Build the corpus: curate the candidate pool against the query list (text only, before any download).

    wit build --pool DIR/pool.parquet --queries q.parquet --out OUT [--cap 20000] [--balance paper|metaclip] [--seed 0]
    ray job submit --working-dir . -- python pipelines/build_wit.py --pool ... --queries ... --out ...

Stages (Ray Data): read (a task per file) -> normalise (tasks) -> language id (actor pool: lid.176 loaded once per
actor) -> match (actor pool: the token automaton built once per actor) -> dedup (grouped by url) -> count (map-reduce)
-> balance (grouped by attributed query; or MetaCLIP sampling) -> write. Outputs under OUT: curated/*.parquet (the pairs
to download), accounting/*.parquet (one row per pool row: uid, status, reason), queries.parquet (matched / kept per
query) and manifest.json. `wit sql OUT` sees the views accounting, curated and queries.

Then (unless --stop-after curate) the download stage: img2dataset fetches OUT/curated into OUT/shards (WebDataset tars,
per-shard Parquet = the `samples` view, NNNNN_stats.json, sizes.json; Ray tasks, one per shard, or --local processes)
and OUT/accounting becomes final: one row per pool row, filtered (curation reason), kept (shard, key) or failed
(reason download_failed, the error). A rerun of the same command reuses a finished curate stage (manifest config
matches) and finished shards; a different curation config into the same OUT is refused.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import logging
import sys
import time
from itertools import zip_longest

HELP = "build the corpus: curate a candidate pool against the query list, then download the pairs into shards"

log = logging.getLogger("wit.build")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wit_builder.config import BALANCE_MODES, STAGES, CurateConfig

    d = CurateConfig()
    parser.add_argument("--pool", required=True, nargs="+",
                        help="pool file(s) or folder(s): .parquet, .csv, .tsv, .jsonl; local or s3://")
    parser.add_argument("--queries", required=True, help="the Parquet from `wit queries`, or a text file, one query per line")
    parser.add_argument("--out", required=True, help="output folder (local or s3://)")
    parser.add_argument("--cap", type=int, default=d.cap, help=f"at most this many pairs per query (paper: {d.cap:,})")
    parser.add_argument("--balance", choices=BALANCE_MODES, default=d.balance,
                        help="paper: hard cap per attributed query (default); metaclip: MetaCLIP's sampling")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice (default 0)")
    parser.add_argument("--languages", default=",".join(d.languages), help="comma-separated codes to keep (default en)")
    parser.add_argument("--lang-threshold", type=float, default=d.lang_threshold,
                        help=f"minimum lid.176 score of the top language (default {d.lang_threshold})")
    parser.add_argument("--url-col", default=d.url_col, help="url column of the pool (default url)")
    parser.add_argument("--text-col", default=d.text_col, help="text column of the pool (default text)")
    parser.add_argument("--uid-col", default=d.uid_col, help="uid column; absent -> '<file>:<row>' (default uid)")
    parser.add_argument("--max-chars", type=int, default=d.max_chars, help=f"truncate texts (default {d.max_chars})")
    parser.add_argument("--stop-after", choices=STAGES, default="download",
                        help="last stage to run: curate (select pairs only) or download (default)")
    parser.add_argument("--workers", type=int, default=None,
                        help="actors per stateful stage (language id, match); default: the cluster's CPUs")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per batch (default 4096)")
    parser.add_argument("--local", action="store_true", help="run in this process without Ray (same output)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild OUT from scratch (curation and shards), e.g. after the pool or query list changed")
    g = parser.add_argument_group("download (img2dataset; defaults: wit_builder/download/img2dataset_job.py)")
    g.add_argument("--allow-hosts", default=None,
                   help="HOST[:PORT],... exempt from the address policy (e.g. a loopback demo web 127.0.0.1:8777)")
    g.add_argument("--image-size", type=int, default=None, help="shorter side after resize (default 256)")
    g.add_argument("--resize-mode", default=None, help="img2dataset resize mode (default keep_ratio)")
    g.add_argument("--min-image-size", type=int, default=None, help="drop images with a smaller shorter side (default 0)")
    g.add_argument("--shard-size", type=int, default=None, help="pairs per shard (default 10000)")
    g.add_argument("--processes", type=int, default=None,
                   help="download processes with --local / --distributor multiprocessing (default: CPU count)")
    g.add_argument("--threads", type=int, default=None, help="fetch threads per process or Ray task (default 32)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per fetch attempt (default 10)")
    g.add_argument("--retries", type=int, default=None, help="extra attempts for transient failures (default 2)")
    g.add_argument("--shard-retries", type=int, default=None,
                   help="reruns of a shard that failed as a whole or whose Ray worker died (default 1)")
    g.add_argument("--distributor", choices=("multiprocessing", "ray"), default=None,
                   help="ray: a task per shard over the cluster (default); multiprocessing: this machine (--local)")


def config_from_args(args: argparse.Namespace):
    from wit_builder.config import BuildConfig, CurateConfig

    curate = CurateConfig(url_col=args.url_col, text_col=args.text_col, uid_col=args.uid_col, max_chars=args.max_chars,
                          languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
                          lang_threshold=args.lang_threshold, cap=args.cap, balance=args.balance, seed=args.seed)
    download = None
    if args.stop_after == "download":
        from wit_builder.download.img2dataset_job import config_from_dict

        values = {"image_size": args.image_size, "resize_mode": args.resize_mode, "min_image_size": args.min_image_size,
                  "number_sample_per_shard": args.shard_size, "processes_count": args.processes,
                  "thread_count": args.threads, "timeout": args.timeout, "retries": args.retries,
                  "shard_retries": args.shard_retries,
                  "distributor": args.distributor or ("multiprocessing" if args.local else "ray")}
        if args.allow_hosts:
            values["allow_hosts"] = tuple(h.strip() for h in args.allow_hosts.split(",") if h.strip())
        download = config_from_dict({k: v for k, v in values.items() if v is not None})
    return BuildConfig(pool=tuple(args.pool), queries=args.queries, out=args.out.rstrip("/"), curate=curate,
                       stop_after=args.stop_after, workers=args.workers, batch_size=args.batch_size, local=args.local,
                       force=args.force,
                       download=download)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    summary = main(config_from_args(args))
    print(summary["report"])
    return 0


def main(cfg) -> dict:
    """Run the build; returns the manifest (with a printable 'report')."""
    from wit_builder import storage
    from wit_builder.curate import load_queries
    from wit_builder.pool.read import list_pool_files

    started = time.perf_counter()
    storage.check_reachable(cfg.out)
    files = list_pool_files(cfg.pool)
    stamps = storage.file_stamps([*files, cfg.queries])
    if cfg.force:
        _clear(cfg.out, shards=True)
    manifest = _finished_curate(cfg, stamps)
    if manifest is None:
        queries, qreport = load_queries(cfg.queries)
        log.info("pool: %d file(s); queries: %s entries (%d empty, %d duplicate skipped)", len(files),
                 f"{len(queries):,}", qreport["empty"], qreport["duplicate"])
        _clear(cfg.out)
        if cfg.local:
            counts = _curate_local(cfg, files, queries)
        else:
            counts = _curate_ray(cfg, files, queries)
        manifest = _finish(cfg, files, stamps, queries, qreport, counts, time.perf_counter() - started)
    else:
        log.info("curate: already done in %s with the same config (manifest.json): reusing it", cfg.out)
        manifest["curate_reused"] = True
    report = _curate_report(cfg, manifest)
    if cfg.stop_after == "download":
        manifest = _download(cfg, manifest)
        report += _download_report(cfg, manifest)
    else:
        report.append(f"stopped after curate; try: wit sql {cfg.out} \"SELECT status, reason, count(*) FROM accounting "
                      "GROUP BY ALL\"")
    manifest["report"] = "\n".join(report)
    return manifest


def _finished_curate(cfg, stamps: list) -> dict | None:
    """The manifest of a finished curate stage with this config, None when there is none; a WitError when OUT holds
    a build with another curation config (mixing them would break the one-row-per-pool-row accounting)."""
    from wit_builder import storage
    from wit_builder.errors import WitError

    if not storage.exists(f"{cfg.out}/manifest.json"):
        return None
    found = storage.read_json(f"{cfg.out}/manifest.json")
    old = found.get("config", {})
    wanted = json.loads(json.dumps(cfg.curate_key()))  # as the manifest stores it (tuples become lists)
    diffs = [f"--{k}" for k in ("pool", "queries") if old.get(k) != wanted[k]]
    diffs += [f"--{k.replace('_', '-')}" for k, v in wanted["curate"].items() if old.get("curate", {}).get(k) != v]
    if diffs:
        raise WitError(f"{cfg.out} already holds a build with a different {', '.join(diffs)} (see its manifest.json): "
                       f"use a new --out, or rerun with the same settings to resume")
    old_stamps = found.get("inputs", {}).get("stamps") or []
    changed = [now[0] for before, now in zip_longest(old_stamps, stamps) if now is not None and not _same(before, now)]
    if changed:
        raise WitError(f"{cfg.out} was built from other contents of {', '.join(changed)} (their sha256 or S3 ETag "
                       f"changed): rerun with --force to rebuild it, or use a new --out")
    found.setdefault("inputs", {})["stamps"] = stamps  # manifests before content digests kept the mtime instead
    if not (_has_files(f"{cfg.out}/accounting") and _has_files(f"{cfg.out}/curated")):
        return None
    return found


def _same(before: list | None, now: list) -> bool:
    """Whether an input stamp from the manifest matches the file now. A manifest of an older wit holds
    (path, size, mtime in ns) instead of a digest: compared as that wit did."""
    if before is None:
        return False
    if isinstance(before[2], int):
        from wit_builder import storage

        fs, path = storage.filesystem(now[0])
        return before == [now[0], now[1], fs.get_file_info(path).mtime_ns]
    return before == now


def _clear(out: str, shards: bool = False) -> None:
    """Remove the outputs of an earlier run (only the folders and files this stage writes; the shards with --force)."""
    import pyarrow.fs as pafs

    from wit_builder import storage

    for sub in ("accounting", "curated", *(("shards",) if shards else ())):
        fs, path = storage.filesystem(f"{out}/{sub}")
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir_contents(path)
    storage.remove(f"{out}/queries.parquet")
    storage.remove(f"{out}/manifest.json")


def _curate_local(cfg, files, queries) -> dict:
    import pyarrow as pa

    from wit_builder.curate import accounting_table, curate, curated_table, queries_table, write_parquet
    from wit_builder.errors import WitError
    from wit_builder.pool.read import read_pool_file

    t0 = time.perf_counter()
    pool = pa.concat_tables([read_pool_file(f, cfg.curate) for f in files])
    if pool.num_rows == 0:
        raise WitError(f"the pool has no rows ({len(files)} file(s), all empty): check --pool")
    read_s = time.perf_counter() - t0
    result = curate(pool, queries, cfg.curate)
    t0 = time.perf_counter()
    write_parquet(accounting_table(result.table, queries), f"{cfg.out}/accounting/part-00000.parquet")
    write_parquet(curated_table(result.table, queries), f"{cfg.out}/curated/part-00000.parquet")
    qtable = queries_table(queries, result.matched, result.table)
    write_parquet(qtable, f"{cfg.out}/queries.parquet")
    timings = {"read": read_s, **result.timings, "write": time.perf_counter() - t0}
    return {"rows_in": pool.num_rows, "timings": timings, "engine": "local", "workers": 1}


def _curate_ray(cfg, files, queries) -> dict:
    import functools

    import numpy as np
    import pyarrow.compute as pc
    import ray

    from pipelines import _ray, ray_env
    from wit_builder.balance.cap import add_attribution, apply_cap
    from wit_builder.balance.dedup import mark_duplicates
    from wit_builder.balance.metaclip import apply_metaclip
    from wit_builder.curate import accounting_table, curated_table, query_counts, queries_table, write_parquet
    from wit_builder.errors import WitError
    from wit_builder.match.counts import partial_counts
    from wit_builder.pool.langid import LanguageId
    from wit_builder.pool.normalize import normalize_batch

    ray_env.init_local()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = True
    # The grouped stages (dedup by url, cap by query) shuffle only compact rows; the sort-based shuffle runs as plain
    # tasks, while the default hash shuffle starts aggregator actors (~13 s of fixed cost per shuffle measured here).
    ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    cpus = _ray.cluster_cpus()
    workers = cfg.workers or cpus
    share = _ray.actor_cpus(cpus, 2 * workers)
    parts = max(1, 2 * cpus)  # hash partitions of the grouped stages (dedup by url, cap by query)
    bs, c = cfg.batch_size, cfg.curate
    n = len(queries)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    ds = ds.map_batches(functools.partial(_read_files, cfg=c, rows=bs), batch_format="pyarrow", batch_size=1,
                        num_cpus=_ray.TASK_CPUS)
    ds = _ray.map_stage(ds, normalize_batch, batch_size=bs, fn_kwargs={"cfg": c})
    ds = _ray.actor_stage(ds, LanguageId, batch_size=bs, workers=workers, num_cpus=share,
                          fn_kwargs={"cfg": c})
    ds = _ray.actor_stage(ds, functools.partial(_make_matcher, queries), batch_size=bs, workers=workers,
                          num_cpus=share)
    ds = ds.materialize()
    rows_in = ds.count()
    if rows_in == 0:
        raise WitError(f"the pool has no rows ({len(files)} file(s), all empty): check --pool")
    timings["read+normalise+langid+match"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dead = _ray.filter_stage(ds, lambda t: pc.is_valid(t["reason"]), batch_size=bs)
    dead = _ray.map_stage(dead, _no_attribution, batch_size=bs)
    alive = _ray.filter_stage(ds, lambda t: pc.is_null(t["reason"]), batch_size=bs).materialize()
    has_alive = alive.count() > 0
    if has_alive:
        alive = _ray.grouped_stage(alive, functools.partial(mark_duplicates, seed=c.seed), key=_url_partition,
                                   partitions=parts).materialize()
    timings["dedup"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    matched = _ray.sum_arrays(alive, lambda t: partial_counts(t["query_ids"], n, pc.is_null(t["reason"])), n,
                              batch_size=bs) if has_alive else np.zeros(n, np.int64)
    timings["count"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if has_alive:
        counts_ref = _ray.shared(matched)
        alive = _ray.map_stage(alive, _ray.with_shared(add_attribution, counts=counts_ref), batch_size=bs)
        if c.balance == "paper":
            alive = _ray.grouped_stage(alive, functools.partial(apply_cap, cap=c.cap, seed=c.seed),
                                       key=lambda t: t["attributed"].to_numpy(), partitions=parts)
        else:
            alive = _ray.map_stage(alive, _ray.with_shared(functools.partial(apply_metaclip, t=c.cap, seed=c.seed),
                                                           counts=counts_ref), batch_size=bs)
        final = dead.union(alive).materialize()
    else:
        final = dead.materialize()
    timings["balance"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    queries_ref = _ray.shared(queries)
    _ray.map_stage(final, _ray.with_shared(accounting_table, queries=queries_ref), batch_size=bs).write_parquet(
        **_target(f"{cfg.out}/accounting"))
    kept = _ray.filter_stage(final, lambda t: pc.is_null(t["reason"]), batch_size=bs)
    _ray.map_stage(kept, _ray.with_shared(curated_table, queries=queries_ref), batch_size=bs).write_parquet(
        **_target(f"{cfg.out}/curated"))
    if not _has_files(f"{cfg.out}/curated"):
        write_parquet(curated_table(_empty_like(), queries), f"{cfg.out}/curated/part-00000.parquet")
    per_query = _ray.sum_arrays(final, functools.partial(query_counts, n=n), 3 * n, batch_size=bs)
    write_parquet(queries_table(queries, matched, counts=per_query), f"{cfg.out}/queries.parquet")
    timings["write"] = time.perf_counter() - t0
    return {"rows_in": rows_in, "timings": timings, "engine": "ray", "workers": workers}


def _read_files(batch, cfg, rows):
    """Read one pool file and yield it in blocks of `rows` rows (so a single big file still spreads over workers)."""
    from wit_builder.pool.read import read_pool_file

    for path in batch["path"].to_pylist():
        table = read_pool_file(path, cfg)
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows)


def _url_partition(table):
    """A stable partition number per url (crc32: the same in every worker process, unlike Python's str hash)."""
    import zlib

    import numpy as np

    return np.fromiter((zlib.crc32(u.encode()) for u in table["url"].to_pylist()), dtype=np.int64,
                       count=table.num_rows)


def _make_matcher(queries):
    import functools

    from wit_builder.match.automaton import TokenAutomaton
    from wit_builder.match.counts import match_batch

    return functools.partial(match_batch, automaton=TokenAutomaton(queries))


def _no_attribution(table):
    import pyarrow as pa

    return table.append_column("attributed", pa.array([-1] * table.num_rows, pa.int32()))


def _empty_like():
    import pyarrow as pa

    from wit_builder.pool.read import READ_SCHEMA

    t = READ_SCHEMA.empty_table()
    return (t.append_column("lang", pa.array([], pa.string())).append_column("lang_score", pa.array([], pa.float32()))
            .append_column("query_ids", pa.array([], pa.list_(pa.int32())))
            .append_column("attributed", pa.array([], pa.int32())))


def _target(uri: str) -> dict:
    """{path, filesystem} for Ray's writers, resolved by storage (local or s3://)."""
    from wit_builder import storage

    fs, path = storage.filesystem(uri)
    return {"path": path, "filesystem": fs}


def _has_files(uri: str) -> bool:
    from wit_builder import storage

    return bool(storage.listdir(uri, ".parquet"))


def _finish(cfg, files, stamps, queries, qreport, counts, elapsed) -> dict:
    """Check the accounting invariant with DuckDB over what was written, write the manifest, build the report."""
    import platform
    from importlib import metadata

    from wit_builder import catalog, ledger, storage
    from wit_builder.errors import WitError

    con, _ = catalog.connect(cfg.out)
    total, distinct = con.execute("SELECT count(*), count(DISTINCT uid) FROM accounting").fetchone()
    if total != counts["rows_in"] or distinct != total:
        raise WitError(f"accounting invariant broken: {counts['rows_in']:,} rows in, {total:,} accounted, "
                       f"{distinct:,} distinct uids (are the pool's uids unique?)")
    reasons = {("kept" if r is None else r): k for r, k in con.execute(
        "SELECT reason, count(*) FROM accounting GROUP BY 1").fetchall()}
    over = con.execute("SELECT count(*) FROM queries WHERE kept_attributed > ?", [cfg.curate.cap]).fetchone()[0]
    if cfg.curate.balance == "paper" and over:
        raise WitError(f"{over} queries have more than --cap {cfg.curate.cap} attributed pairs: a bug, please report")

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    manifest = {
        "stage": "curate",
        "inputs": {"pool": files, "queries": cfg.queries, "n_queries": len(queries), "queries_skipped": qreport,
                   "stamps": stamps},
        "config": cfg.to_dict(),
        "engine": counts["engine"], "workers": counts["workers"],
        "versions": {"python": platform.python_version(),
                     **{d: version(d) for d in ("wit-clip", "pyarrow", "ray", "ftfy", "fasttext-predict", "numpy",
                                                "img2dataset")}},
        "counts": {"rows_in": counts["rows_in"], "reasons": reasons,
                   "funnel": dict(ledger.funnel(reasons))},
        "timings_s": {k: round(v, 3) for k, v in counts["timings"].items()} | {"total": round(elapsed, 3)},
    }
    storage.write_json(f"{cfg.out}/manifest.json", manifest)
    return manifest


def _curate_report(cfg, manifest) -> list[str]:
    """The curate stage's lines of the end-of-run summary, from its manifest and OUT/queries.parquet."""
    import pyarrow.parquet as pq

    from wit_builder import storage
    from wit_builder.curate import distribution_head, funnel_text

    reasons = manifest["counts"]["reasons"]
    lang_label = "English" if cfg.curate.languages == ("en",) else "language"
    fs, path = storage.filesystem(f"{cfg.out}/queries.parquet")
    qtable = pq.read_table(path, filesystem=fs)
    elapsed = manifest["timings_s"]["total"]
    reused = " (reused from an earlier run)" if manifest.get("curate_reused") else ""
    return [
        f"funnel: {funnel_text(reasons).replace(' language ', f' {lang_label} ')}",
        "filtered: " + ", ".join(f"{r} {k:,}" for r, k in sorted(reasons.items(), key=lambda x: -x[1]) if r != "kept"),
        f"per-query distribution, most matched first (before balancing: matched; after: kept, cap {cfg.curate.cap:,}):",
        distribution_head(qtable),
        f"curate: wrote {cfg.out}/curated, accounting, queries.parquet, manifest.json in {elapsed:.1f} s "
        f"({manifest['engine']}, {manifest['workers']} worker(s)){reused}",
    ]


def download_config(cfg):
    """The DownloadConfig of a build: cfg.download, or the defaults with Ray's distributor unless --local."""
    import dataclasses

    from wit_builder.download.img2dataset_job import DownloadConfig

    if cfg.download is not None:
        return cfg.download
    return dataclasses.replace(DownloadConfig(), distributor="multiprocessing" if cfg.local else "ray")


def _read_curated(out: str):
    """Every curated pair, in uid order (a stable order: a rerun assigns the same pairs to the same shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wit_builder import storage

    parts = []
    for uri in storage.listdir(f"{out}/curated", ".parquet"):
        fs, path = storage.filesystem(uri)
        parts.append(pq.read_table(path, filesystem=fs))
    table = pa.concat_tables(parts, promote_options="permissive") if parts else None
    return table.sort_by("uid") if table is not None else None


def _read_accounting(out: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wit_builder import storage

    parts = []
    for uri in storage.listdir(f"{out}/accounting", ".parquet"):
        fs, path = storage.filesystem(uri)
        parts.append(pq.read_table(path, filesystem=fs))
    return pa.concat_tables(parts, promote_options="permissive")


def _replace_accounting(out: str, table) -> None:
    """Swap OUT/accounting for one file holding `table`: written beside the old files first (a name the view does not
    read), then the old files go and it takes their place, so an interruption never leaves the folder empty."""
    from wit_builder import storage
    from wit_builder.curate import write_parquet

    tmp = f"{out}/accounting/final.parquet.tmp"
    write_parquet(table, tmp)
    fs, tmp_path = storage.filesystem(tmp)
    for uri in storage.listdir(f"{out}/accounting", ".parquet"):
        storage.remove(uri)
    _, final = storage.filesystem(f"{out}/accounting/part-00000.parquet")
    fs.move(tmp_path, final)


def _download(cfg, manifest) -> dict:
    """Download OUT/curated into OUT/shards, make OUT/accounting final, check it, add the download to the manifest."""
    import dataclasses

    from wit_builder import catalog, ledger, storage
    from wit_builder.download import shards, status
    from wit_builder.download.img2dataset_job import download_shards
    from wit_builder.errors import WitError
    from wit_builder.materialise import DOWNLOAD_FAILED, merge, outcome_counts

    dcfg = download_config(cfg)
    if dcfg.distributor == "ray":
        from pipelines import ray_env

        ray_env.init_local()
    pairs = _read_curated(cfg.out)
    if pairs is None or pairs.num_rows == 0:
        raise WitError(f"{cfg.out}/curated holds no pairs: nothing to download (see the funnel above)")
    log.info("download: %s pairs into %s/shards (%s, %d pairs per shard)", f"{pairs.num_rows:,}", cfg.out,
             dcfg.distributor, dcfg.number_sample_per_shard)
    reused = set(shards.shard_names(f"{cfg.out}/shards")) if storage.exists(f"{cfg.out}/shards") else set()
    t0 = time.perf_counter()
    result = download_shards(pairs, f"{cfg.out}/shards", dcfg)
    download_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = merge(_read_accounting(cfg.out), result)
    ledger.assert_accounted(manifest["counts"]["rows_in"], final)
    _replace_accounting(cfg.out, final)
    outcome = outcome_counts(final)

    con, _ = catalog.connect(cfg.out)  # the invariant again, through the views `wit sql` shows
    samples = con.execute("SELECT count(*) FROM samples WHERE status = 'success'").fetchone()[0]
    total, distinct, kept = con.execute(
        "SELECT count(*), count(DISTINCT uid), count(*) FILTER (status = 'kept') FROM accounting").fetchone()
    if total != manifest["counts"]["rows_in"] or distinct != total or kept != samples:
        raise WitError(f"final accounting broken: {manifest['counts']['rows_in']:,} pool rows, {total:,} accounted "
                       f"({distinct:,} distinct), {kept:,} kept but {samples:,} samples in {cfg.out}/shards")
    errors = con.execute(f"SELECT {status.error_group_sql()} AS error, count(*) AS n FROM accounting "
                         "WHERE status = 'failed' GROUP BY 1 ORDER BY n DESC, error LIMIT 20").fetchall()
    sizes = shards.shard_sizes(f"{cfg.out}/shards")
    kept_now = sum(n for name, n in sizes.items() if name[: -len(".tar")] not in reused)  # this run's work only
    merge_s = time.perf_counter() - t0
    manifest = {k: v for k, v in manifest.items() if k != "report"}
    manifest["stage"] = "download"
    manifest["config"] = cfg.to_dict() | {"download": dataclasses.asdict(dcfg)}
    manifest["counts"]["outcome"] = outcome
    manifest["counts"]["download"] = {
        "pairs": pairs.num_rows, "kept": outcome["kept"], "failed": outcome["failed"], "shards": len(sizes),
        "shards_reused": len(reused & {name[: -len(".tar")] for name in sizes}), "images_this_run": kept_now,
        "images_per_s": round(kept_now / download_s, 2) if download_s else None,
        "reason_failed": DOWNLOAD_FAILED, "errors": [{"error": e, "count": n} for e, n in errors],
    }
    manifest["counts"]["funnel"]["downloaded"] = outcome["kept"]
    manifest["timings_s"]["download"] = round(download_s, 3)
    manifest["timings_s"]["accounting"] = round(merge_s, 3)
    storage.write_json(f"{cfg.out}/manifest.json", manifest)
    return manifest


def _download_report(cfg, manifest) -> list[str]:
    d = manifest["counts"]["download"]
    t = manifest["timings_s"]["download"]
    rate = f"{d['images_per_s']:,.1f}" if d["images_per_s"] is not None else "-"
    lines = [
        f"funnel: ... kept {d['pairs']:,} -> downloaded {d['kept']:,} ({d['failed']:,} failed, "
        f"{100 * d['kept'] / max(d['pairs'], 1):.1f} %)",
        f"download: {d['shards']} shard(s) in {cfg.out}/shards, {d['images_this_run']:,} images in {t:.1f} s "
        f"({rate} images/s)" + (f"; {d['shards_reused']} finished shard(s) reused" if d["shards_reused"] else ""),
    ]
    if d["errors"]:
        width = max(len(f"{e['count']:,}") for e in d["errors"])
        lines.append("failures by error (most frequent first):")
        lines += [f"  {e['count']:>{width},}  {e['error']}" for e in d["errors"][:10]]
    lines.append(f"try: wit sql {cfg.out} \"SELECT status, reason, count(*) FROM accounting GROUP BY ALL\"")
    return lines


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
