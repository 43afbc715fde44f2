"""Build the corpus: curate the candidate pool against the query list (text only, before any download).

    wit build --pool DIR/pool.parquet --queries q.parquet --out OUT [--cap 20000] [--balance paper|metaclip] [--seed 0]
    ray job submit --working-dir . -- python pipelines/build_wit.py --pool ... --queries ... --out ...

Stages (Ray Data): read (a task per file) -> normalise (tasks) -> language id (actor pool: lid.176 loaded once per
actor) -> match (actor pool: the token automaton built once per actor) -> dedup (grouped by url) -> count (map-reduce)
-> balance (grouped by attributed query; or MetaCLIP sampling) -> write. Outputs under OUT: curated/*.parquet (the pairs
to download), accounting/*.parquet (one row per pool row: uid, status, reason), queries.parquet (matched / kept per
query) and manifest.json. `wit sql OUT` sees the views accounting, curated and queries. --stop-after curate is the only
stage so far; the download stage plugs in after curate and reads OUT/curated.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import logging
import sys
import time

HELP = "curate a candidate pool against the query list: normalise, language, match, balance (then download)"
STAGES = ("curate",)

log = logging.getLogger("wit.build")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wit_builder.config import BALANCE_MODES, CurateConfig

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
    parser.add_argument("--stop-after", choices=STAGES, default="curate", help="last stage to run (default curate)")
    parser.add_argument("--workers", type=int, default=None,
                        help="actors per stateful stage (language id, match); default: the cluster's CPUs")
    parser.add_argument("--batch-size", type=int, default=4096, help="rows per batch (default 4096)")
    parser.add_argument("--local", action="store_true", help="run in this process without Ray (same output)")


def config_from_args(args: argparse.Namespace):
    from wit_builder.config import BuildConfig, CurateConfig

    curate = CurateConfig(url_col=args.url_col, text_col=args.text_col, uid_col=args.uid_col, max_chars=args.max_chars,
                          languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
                          lang_threshold=args.lang_threshold, cap=args.cap, balance=args.balance, seed=args.seed)
    return BuildConfig(pool=tuple(args.pool), queries=args.queries, out=args.out.rstrip("/"), curate=curate,
                       stop_after=args.stop_after, workers=args.workers, batch_size=args.batch_size, local=args.local)


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
    queries, qreport = load_queries(cfg.queries)
    log.info("pool: %d file(s); queries: %s entries (%d empty, %d duplicate skipped)", len(files), f"{len(queries):,}",
             qreport["empty"], qreport["duplicate"])
    _clear(cfg.out)
    if cfg.local:
        counts = _curate_local(cfg, files, queries)
    else:
        counts = _curate_ray(cfg, files, queries)
    return _finish(cfg, files, queries, qreport, counts, time.perf_counter() - started)


def _clear(out: str) -> None:
    """Remove the outputs of an earlier run (only the folders and files this stage writes)."""
    import pyarrow.fs as pafs

    from wit_builder import storage

    for sub in ("accounting", "curated"):
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


def _finish(cfg, files, queries, qreport, counts, elapsed) -> dict:
    """Check the accounting invariant with DuckDB over what was written, write the manifest, build the report."""
    import platform
    from importlib import metadata

    from wit_builder import catalog, ledger, storage
    from wit_builder.curate import distribution_head, funnel_text
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

    lang_label = "English" if cfg.curate.languages == ("en",) else "language"
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(f"{cfg.out}/queries.parquet")
    qtable = pq.read_table(path, filesystem=fs)
    manifest = {
        "stage": "curate",
        "inputs": {"pool": files, "queries": cfg.queries, "n_queries": len(queries), "queries_skipped": qreport},
        "config": cfg.to_dict(),
        "engine": counts["engine"], "workers": counts["workers"],
        "versions": {"python": platform.python_version(),
                     **{d: version(d) for d in ("wit-clip", "pyarrow", "ray", "ftfy", "fasttext-predict", "numpy")}},
        "counts": {"rows_in": counts["rows_in"], "reasons": reasons,
                   "funnel": dict(ledger.funnel(reasons))},
        "timings_s": {k: round(v, 3) for k, v in counts["timings"].items()} | {"total": round(elapsed, 3)},
    }
    storage.write_json(f"{cfg.out}/manifest.json", manifest)
    report = [
        f"funnel: {funnel_text(reasons).replace(' language ', f' {lang_label} ')}",
        "filtered: " + ", ".join(f"{r} {k:,}" for r, k in sorted(reasons.items(), key=lambda x: -x[1]) if r != "kept"),
        f"per-query distribution, most matched first (before balancing: matched; after: kept, cap {cfg.curate.cap:,}):",
        distribution_head(qtable),
        f"wrote {cfg.out}/curated, accounting, queries.parquet, manifest.json in {elapsed:.1f} s "
        f"({counts['engine']}, {counts['workers']} worker(s)); try: wit sql {cfg.out} \"SELECT status, reason, "
        "count(*) FROM accounting GROUP BY ALL\"",
    ]
    manifest["report"] = "\n".join(report)
    return manifest


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
