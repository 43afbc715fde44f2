"""The rules of `wit build`: curate the pool into a BuildFolder, then download the selected pairs into its shards.

A rerun of the same command reuses a finished curate stage (same settings and input contents in manifest.json) and
finished shards; a different curation config into the same folder is refused; --force starts over. After each stage
the accounting invariant is checked through the same DuckDB views `wit sql` shows, and the manifest records the
stage as `finished_stage`. Where curation runs is the caller's choice: `curate_local` here, or the Ray executor that
pipelines/build_wit.py passes in (any callable with the same signature).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from collections.abc import Callable
from importlib import metadata

from wit_builder import catalog, ledger, storage
from wit_builder.build_report import curate_report, download_report
from wit_builder.config import BuildConfig
from wit_builder.curate import curate_local, load_queries
from wit_builder.errors import WitError
from wit_builder.layout import BuildFolder
from wit_builder.pool.read import list_pool_files

log = logging.getLogger("wit.build")

# curate(folder, files, queries, cfg: CurateConfig) -> {rows_in, timings, workers, texts_cut}
Curator = Callable[..., dict]


def build(
    cfg: BuildConfig,
    curator: Curator = curate_local,
    engine: str = "local",
    before_download: Callable[[], None] | None = None,
) -> dict:
    """Run the build; returns the manifest (with a printable 'report')."""
    started = time.perf_counter()
    folder = BuildFolder(cfg.out)
    storage.check_reachable(folder.root)
    files = list_pool_files(cfg.pool)
    stamps = storage.file_stamps([*files, cfg.queries])
    if cfg.force:
        folder.clear(with_shards=True)
    manifest = finished_curation(cfg, folder, stamps)
    if manifest is None:
        queries, skipped = load_queries(cfg.queries)
        log.info(
            "pool: %d file(s); queries: %s entries (%d empty, %d duplicate skipped)",
            len(files),
            f"{len(queries):,}",
            skipped["empty"],
            skipped["duplicate"],
        )
        folder.clear()
        run = curator(folder, files, queries, cfg.curate)
        manifest = _finish_curation(
            cfg, folder, files, stamps, queries, skipped, run, engine, time.perf_counter() - started
        )
    else:
        log.info("curate: already done in %s with the same config (manifest.json): reusing it", cfg.out)
        manifest["curate_reused"] = True
    report = curate_report(cfg, manifest, folder.read_query_counts())
    if cfg.stop_after == "download":
        if before_download is not None:
            before_download()
        manifest = download(cfg, folder, manifest)
        report += download_report(cfg, manifest)
    else:
        report.append(
            f'stopped after curate; try: wit sql {cfg.out} "SELECT status, reason, count(*) FROM accounting '
            'GROUP BY ALL"'
        )
    manifest["report"] = "\n".join(report)
    return manifest


def finished_curation(cfg: BuildConfig, folder: BuildFolder, stamps: list) -> dict | None:
    """The manifest of a finished curate stage with this config, None when there is none; a WitError when the
    folder holds a build with another curation config or other input contents (mixing them would break the
    one-row-per-pool-row accounting)."""
    found = folder.read_manifest()
    if found is None or "finished_stage" not in found:  # none, or written by an older wit: curate again
        return None
    old = found.get("config", {})
    wanted = json.loads(json.dumps(cfg.curate_key()))  # as the manifest stores it (tuples become lists)
    diffs = [f"--{k}" for k in ("pool", "queries") if old.get(k) != wanted[k]]
    diffs += [f"--{k.replace('_', '-')}" for k, v in wanted["curate"].items() if old.get("curate", {}).get(k) != v]
    if diffs:
        raise WitError(
            f"{cfg.out} already holds a build with a different {', '.join(diffs)} (see its manifest.json): "
            f"use a new --out, or rerun with the same settings to resume"
        )
    if found.get("inputs", {}).get("stamps") != stamps:
        changed = [now[0] for before, now in zip(found.get("inputs", {}).get("stamps") or [], stamps) if before != now]
        raise WitError(
            f"{cfg.out} was built from other contents of {', '.join(changed) or 'its inputs'} (their "
            f"sha256 or S3 ETag changed): rerun with --force to rebuild it, or use a new --out"
        )
    return found if folder.has_curation() else None


def _finish_curation(cfg, folder, files, stamps, queries, skipped, run, engine, elapsed) -> dict:
    """Check the accounting invariant with DuckDB over what was written, then write the manifest."""
    con, _ = catalog.connect(folder.root)
    total, distinct = con.execute("SELECT count(*), count(DISTINCT uid) FROM accounting").fetchone()
    if total != run["rows_in"] or distinct != total:
        raise WitError(
            f"accounting invariant broken: {run['rows_in']:,} rows in, {total:,} accounted, "
            f"{distinct:,} distinct uids (are the pool's uids unique?)"
        )
    reasons = {
        (ledger.SELECTED if r is None else r): k
        for r, k in con.execute("SELECT reason, count(*) FROM accounting GROUP BY 1").fetchall()
    }
    over = con.execute("SELECT count(*) FROM query_counts WHERE kept_attributed > ?", [cfg.curate.cap]).fetchone()[0]
    if cfg.curate.balance == "paper" and over:
        raise WitError(f"{over} queries have more than --cap {cfg.curate.cap} attributed pairs: a bug, please report")
    manifest = {
        "finished_stage": "curate",
        "inputs": {
            "pool": files,
            "queries": cfg.queries,
            "n_queries": len(queries),
            "queries_skipped": skipped,
            "stamps": stamps,
        },
        "config": cfg.to_dict(),
        "engine": engine,
        "workers": run["workers"],
        "versions": _versions(),
        "counts": {
            "rows_in": run["rows_in"],
            "reasons": reasons,
            "funnel": dict(ledger.funnel(reasons)),
            "texts_cut": run["texts_cut"],
        },
        "timings_s": {k: round(v, 3) for k, v in run["timings"].items()} | {"total": round(elapsed, 3)},
    }
    folder.write_manifest(manifest)
    return manifest


def _versions() -> dict:
    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    dists = ("wit-clip", "pyarrow", "ray", "ftfy", "fasttext-predict", "numpy", "img2dataset")
    return {"python": platform.python_version(), **{d: version(d) for d in dists}}


def download_config(cfg: BuildConfig):
    """The DownloadConfig of a build: cfg.download, or the defaults with Ray's distributor unless --local."""
    from wit_builder.download.img2dataset_job import DownloadConfig

    if cfg.download is not None:
        return cfg.download
    return dataclasses.replace(DownloadConfig(), distributor="multiprocessing" if cfg.local else "ray")


def download(cfg: BuildConfig, folder: BuildFolder, manifest: dict) -> dict:
    """Download the folder's curated pairs into its shards, make its accounting final, check it, and add the
    download to the manifest (finished_stage = download)."""
    from wit_builder.download import shards, status
    from wit_builder.download.img2dataset_job import download_shards
    from wit_builder.materialise import merge, outcome_counts

    dcfg = download_config(cfg)
    pairs = folder.read_curated()
    if pairs.num_rows == 0:
        raise WitError(f"{folder.curated} holds no pairs: nothing to download (see the funnel above)")
    log.info(
        "download: %s pairs into %s (%s, %d pairs per shard)",
        f"{pairs.num_rows:,}",
        folder.shards,
        dcfg.distributor,
        dcfg.number_sample_per_shard,
    )
    reused = set(folder.finished_shards())
    t0 = time.perf_counter()
    result = download_shards(pairs, folder.shards, dcfg)
    download_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = merge(folder.read_accounting(), result)
    ledger.assert_accounted(manifest["counts"]["rows_in"], final)
    folder.replace_accounting(final)
    outcome = outcome_counts(final)

    con, _ = catalog.connect(folder.root)  # the invariant again, through the views `wit sql` shows
    samples = con.execute("SELECT count(*) FROM samples WHERE status = 'success'").fetchone()[0]
    total, distinct, kept = con.execute(
        "SELECT count(*), count(DISTINCT uid), count(*) FILTER (status = 'kept') FROM accounting"
    ).fetchone()
    if total != manifest["counts"]["rows_in"] or distinct != total or kept != samples:
        raise WitError(
            f"final accounting broken: {manifest['counts']['rows_in']:,} pool rows, {total:,} accounted "
            f"({distinct:,} distinct), {kept:,} kept but {samples:,} samples in {folder.shards}"
        )
    errors = con.execute(
        f"SELECT reason, {status.error_group_sql()} AS error, count(*) AS n FROM accounting "
        "WHERE status = 'failed' GROUP BY ALL ORDER BY n DESC, error LIMIT 20"
    ).fetchall()
    sizes = shards.shard_sizes(folder.shards)
    kept_now = sum(n for name, n in sizes.items() if name[: -len(".tar")] not in reused)  # this run's work only
    merge_s = time.perf_counter() - t0
    manifest = {k: v for k, v in manifest.items() if k != "report"}
    manifest["finished_stage"] = "download"
    manifest["config"] = cfg.to_dict() | {"download": dataclasses.asdict(dcfg)}
    manifest["counts"]["outcome"] = outcome
    manifest["counts"]["download"] = {
        "pairs": pairs.num_rows,
        "kept": outcome["kept"],
        "failed": outcome["failed"],
        "shards": len(sizes),
        "shards_reused": len(reused & {name[: -len(".tar")] for name in sizes}),
        "images_this_run": kept_now,
        "images_per_s": round(kept_now / download_s, 2) if download_s else None,
        "errors": [{"reason": r, "error": e, "count": n} for r, e, n in errors],
    }
    manifest["counts"]["funnel"]["downloaded"] = outcome["kept"]
    manifest["timings_s"]["download"] = round(download_s, 3)
    manifest["timings_s"]["accounting"] = round(merge_s, 3)
    folder.write_manifest(manifest)
    return manifest
