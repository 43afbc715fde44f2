"""`wit dedup OUT`, the build-folder side: sign every sample of a finished `wit build` folder, cluster near-duplicates
(eval/neardup/dedup.py), write OUT/dedup/clusters.parquet and summary.json, and with `remove` take every cluster's
non-representative members out of the corpus.

A removal rewrites the shard's tar without the samples (a temporary file renamed over it, so a stopped run never
leaves a half-written shard), marks their rows in the shard's Parquet with status `near_duplicate` (the row stays:
the pair was attempted and downloaded), rewrites sizes.json, and turns their accounting rows from kept to filtered
with reason `near_duplicate`. clusters.parquet keeps the clusters whose members were removed by earlier runs, and
every removal it lists is applied again on each `--remove` run, so rerunning (also after an interruption) converges
and a second run removes nothing more. The manifest's `finished_stage` stays `download`; its `dedup` entry records
the run."""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eval.neardup import dedup as clustering
from eval.neardup.detector import Signatures
from eval.neardup.model import DetectorConfig
from eval.overlap import corpus as corpus_mod
from wit_builder import ledger, storage
from wit_builder.download import shards as shards_mod
from wit_builder.download.status import REMOVED
from wit_builder.errors import WitError
from wit_builder.layout import BuildFolder

DEDUP = "dedup"
CLUSTERS_FILE = "clusters.parquet"
SUMMARY_FILE = "summary.json"
REMOVED_STATUS = REMOVED  # a removed sample's status in its shard's Parquet (no longer `success`)
REASON = "near_duplicate"  # its accounting reason (ledger.REASONS)

CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),  # the sample's key in its shard
        pa.field("shard", pa.string()),  # NNNNN.tar
        pa.field("uid", pa.string()),  # the pool row (from the shard's Parquet)
        pa.field("cluster", pa.int64()),  # 0.. in shard/key order of the representatives
        pa.field("representative", pa.string()),  # the key of the cluster's first sample (kept)
        pa.field("is_representative", pa.bool_()),
        pa.field("tier", pa.string()),  # exact | phash | embedding: the strongest link tying it to its cluster
        pa.field("similarity", pa.float64()),  # of that link (1.0 exact, 1 - bits/64 pHash, cosine embedding)
        pa.field("linked_to", pa.string()),  # the key at the other end of that link
        pa.field("removed", pa.bool_()),  # taken out of the corpus by `wit dedup --remove`
    ]
)


@dataclass
class DedupOptions:
    """How `wit dedup` runs; the defaults are the ones it documents."""

    detector: str | None = None  # a saved detector; default: train one on the corpus (saved to OUT/dedup)
    threshold: float | None = None  # the embedding tier's cosine; default: calibrated on the corpus's images
    phash_distance: int = 4
    k: int = 10  # embedding neighbours each sample is compared with
    remove: bool = False
    ray: bool | None = None
    train_images: int = 2000
    steps: int | None = None  # detector training steps (default: ~40 views per image, 50..400)
    detector_config: DetectorConfig | None = None
    gray: bool = False  # train the detector on luminance only (DetectorConfig.gray), as `wit overlap --detector-gray`
    min_precision: float = 0.99
    calibration_pairs: int = 400
    examples: int = 5
    seed: int = 0
    progress: bool = False

    def overlap_options(self):
        """The eval.overlap.run.OverlapOptions of the settings `wit overlap`'s detector training and calibration share
        with these."""
        from eval.overlap.run import OverlapOptions

        return OverlapOptions(
            detector=self.detector,
            train_images=self.train_images,
            steps=self.steps,
            detector_config=self.detector_config,
            gray=self.gray,
            min_precision=self.min_precision,
            calibration_pairs=self.calibration_pairs,
            phash_distance=self.phash_distance,
            seed=self.seed,
        )


def log(message: str) -> None:
    print(f"dedup: {message}", file=sys.stderr, flush=True)


def check_folder(out: str) -> BuildFolder:
    """The build folder `out`, when it is a local `wit build` folder with finished shards; WitError otherwise."""
    if storage.is_s3(out):
        raise WitError(f"{out}: wit dedup works on a local build folder; copy it locally (aws s3 sync) first")
    folder = BuildFolder(out)
    if not os.path.isdir(out) or folder.read_manifest() is None:
        raise WitError(f"{out} is not a `wit build` folder (no manifest.json): give the --out of a finished build")
    if folder.finished_stage() != "download" or not folder.finished_shards():
        raise WitError(
            f"{out} has no finished shards (finished stage: {folder.finished_stage()}): run `wit build` through its "
            "download stage first (rerun the same command to finish it)"
        )
    return folder


def shard_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def uids_by_key(folder: BuildFolder) -> dict[tuple[str, str], str]:
    """{(NNNNN.tar, key): uid} of every row of the finished shards' Parquet files."""
    out = {}
    for uri in folder.sample_tables():
        table = pq.read_table(uri, columns=["uid", "key"])
        shard = shard_name(uri)[: -len(".parquet")] + ".tar"
        for uid, key in zip(table["uid"].to_pylist(), table["key"].to_pylist()):
            out[(shard, str(key))] = None if uid is None else str(uid)
    return out


def in_order(corpus: corpus_mod.Corpus) -> tuple[list[str], list[str], Signatures]:
    """(keys, shard names, signatures) sorted by shard then key: the order that makes the first row representative."""
    names = [shard_name(u) for u in corpus.shards]
    order = sorted(range(len(corpus)), key=lambda i: (names[i], corpus.keys[i]))
    sig = corpus.signatures
    picked = Signatures(
        [sig.digests[i] for i in order], sig.hashes[order], sig.vectors[order], sig.ok[order], dict(sig.skipped)
    )
    return [corpus.keys[i] for i in order], [names[i] for i in order], picked


def calibration_sample(urls: list[str], n: int, seed: int, leave_out=frozenset()) -> tuple[list[str], list[bytes]]:
    """Up to `n` (key, image) of the corpus with the smallest seeded hash of shard and key: spread, deterministic;
    samples in `leave_out` ((shard name, key): known duplicates) are not taken."""
    scored = []
    for s in corpus_mod.iter_samples(urls):
        if s.image is not None and (shard_name(s.shard), s.key) not in leave_out:
            h = hashlib.blake2b(f"cal{seed}:{s.shard}:{s.key}".encode(), digest_size=8).digest()
            scored.append((h, f"{shard_name(s.shard)}/{s.key}", s.image))
            if len(scored) > 4 * n:
                scored = sorted(scored)[:n]
    chosen = sorted(scored)[:n]
    return [k for _, k, _ in chosen], [im for _, _, im in chosen]


def topk_search(vectors: np.ndarray, ok: np.ndarray):
    """Top-k cosine over the readable rows with faiss (exact or IVF-PQ by size), returning full-table rows."""
    from eval.overlap.index import build_index

    rows = np.nonzero(ok)[0]
    if not rows.size:
        return lambda q, k: (np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64))
    index = build_index(vectors[rows])

    def search(queries: np.ndarray, k: int):
        sims, ids = index.search(queries, k)
        return sims, np.where(ids >= 0, rows[np.maximum(ids, 0)], -1)

    return search


def cluster_table(keys, names, uids, found: clustering.Clusters, remove: bool) -> pa.Table:
    """clusters.parquet's rows for the members of clusters of two or more."""
    rows = found.members()
    rep = found.representative
    table = {
        "key": [keys[i] for i in rows],
        "shard": [names[i] for i in rows],
        "uid": [uids.get((names[i], keys[i])) for i in rows],
        "cluster": found.cluster[rows],
        "representative": [keys[rep[i]] for i in rows],
        "is_representative": [bool(rep[i] == i) for i in rows],
        "tier": [found.tier[i] for i in rows],
        "similarity": found.similarity[rows],
        "linked_to": [keys[found.partner[i]] for i in rows],
        "removed": [bool(remove and rep[i] != i) for i in rows],
    }
    return pa.table(table, schema=CLUSTERS_SCHEMA)


def with_earlier_removals(previous: pa.Table | None, new: pa.Table) -> pa.Table:
    """The new clusters plus those of earlier runs that removed members (their samples are gone from the shards);
    clusters sharing a sample become one, renumbered, the first sample in shard/key order representing it."""
    if previous is None or previous.num_rows == 0:
        return new
    gone = set(previous.filter(pc.equal(previous["removed"], True))["cluster"].to_pylist())
    old = previous.filter(pc.is_in(previous["cluster"], pa.array(sorted(gone), pa.int64())))
    if old.num_rows == 0:
        return new
    old = old.append_column("_run", pa.array([0] * old.num_rows, pa.int8()))
    new = new.append_column("_run", pa.array([1] * new.num_rows, pa.int8()))
    rows = pa.concat_tables([old, new]).to_pylist()
    nodes = sorted({(r["shard"], r["key"]) for r in rows})
    at = {node: i for i, node in enumerate(nodes)}
    shard_of = {r["key"]: r["shard"] for r in rows}  # keys carry their shard's number: unique in a build
    links = [
        clustering.Link(
            *sorted((at[(r["shard"], r["key"])], at[(shard_of[r["representative"]], r["representative"])])),
            "exact",
            1.0,
        )
        for r in rows
    ]
    root = clustering.union_find(len(nodes), links)
    ids = {rt: c for c, rt in enumerate(sorted(set(root.tolist())))}
    best: dict[int, dict] = {}
    for r in sorted(rows, key=lambda r: (not r["removed"], -r["_run"])):  # an earlier removal's row wins
        best.setdefault(at[(r["shard"], r["key"])], r)
    out = []
    for i in range(len(nodes)):
        r = dict(best[i])
        r.pop("_run")
        r["cluster"] = ids[int(root[i])]
        r["representative"] = nodes[int(root[i])][1]
        r["is_representative"] = int(root[i]) == i
        r["removed"] = bool(r["removed"]) and not r["is_representative"]
        out.append(r)
    return pa.Table.from_pylist(out, schema=CLUSTERS_SCHEMA)


def read_clusters(folder: BuildFolder) -> pa.Table | None:
    path = folder.path(DEDUP, CLUSTERS_FILE)
    return pq.read_table(path).cast(CLUSTERS_SCHEMA) if os.path.isfile(path) else None


def write_atomic(path: str, write) -> None:
    """Call write(tmp_path), then rename the temporary file over `path` (a reader never sees half a file)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"_dedup_{name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def rewrite_tar(path: str, keys: set[str]) -> int:
    """Rewrite the tar at `path` without the members of `keys` (KEY.ext); returns how many samples went."""
    with tarfile.open(path) as src:
        members = src.getmembers()
        dropped = {m.name.split(".", 1)[0] for m in members if m.name.split(".", 1)[0] in keys}
        if not dropped:
            return 0

        def write(tmp: str) -> None:
            with tarfile.open(tmp, "w") as dst:
                for m in members:
                    if m.name.split(".", 1)[0] not in keys:
                        dst.addfile(m, src.extractfile(m) if m.isfile() else None)

        write_atomic(path, write)
    return len(dropped)


def mark_samples(path: str, keys: set[str], partners: dict[str, str]) -> int:
    """Set the shard Parquet rows of `keys` that are still `success` to REMOVED_STATUS (error_message names the kept
    sample); returns how many rows changed."""
    table = pq.read_table(path)
    hit = pc.and_(
        pc.is_in(table["key"].cast(pa.string()), pa.array(sorted(keys), pa.string())),
        pc.equal(table["status"], "success"),
    )
    n = int(pc.sum(hit).as_py() or 0)
    if not n:
        return 0
    notes = [f"near duplicate of {partners.get(str(k), '?')} (wit dedup)" for k in table["key"].to_pylist()]
    status = pc.if_else(hit, pa.scalar(REMOVED_STATUS), table["status"])
    error = pc.if_else(hit, pa.array(notes, pa.string()), table["error_message"].cast(pa.string()))
    table = table.set_column(table.column_names.index("status"), "status", status)
    i = table.column_names.index("error_message")
    table = table.set_column(i, pa.field("error_message", pa.string()), error)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))
    return n


def mark_accounting(accounting: pa.Table, uids: set[str]) -> tuple[pa.Table, int]:
    """The accounting with the kept rows of `uids` turned filtered/near_duplicate; and how many turned."""
    hit = pc.and_(
        pc.is_in(accounting["uid"], pa.array(sorted(uids), pa.string())), pc.equal(accounting["status"], ledger.KEPT)
    )
    n = int(pc.sum(hit).as_py() or 0)
    status = pc.if_else(hit, pa.scalar(ledger.FILTERED), accounting["status"])
    reason = pc.if_else(hit, pa.scalar(REASON), accounting["reason"])
    accounting = accounting.set_column(accounting.column_names.index("status"), "status", status)
    accounting = accounting.set_column(accounting.column_names.index("reason"), "reason", reason)
    return accounting, n


def apply_removals(folder: BuildFolder, table: pa.Table) -> dict:
    """Take the removed rows of clusters.parquet out of the shards, sizes.json and the accounting (idempotent)."""
    removed = table.filter(pc.equal(table["removed"], True)).to_pylist()
    by_shard: dict[str, set[str]] = {}
    for r in removed:
        by_shard.setdefault(r["shard"], set()).add(r["key"])
    partners = {r["key"]: r["representative"] for r in removed}
    from_tars = rows = 0
    for shard, keys in sorted(by_shard.items()):
        stem = shard[: -len(".tar")]
        if stem not in folder.finished_shards():
            raise WitError(
                f"{folder.shards}/{shard} is gone: clusters.parquet belongs to another build; delete "
                f"{folder.path(DEDUP)} and rerun wit dedup"
            )
        from_tars += rewrite_tar(folder.path("shards", shard), keys)
        rows += mark_samples(folder.path("shards", f"{stem}.parquet"), keys, partners)
    shards_mod.write_sizes(folder.shards)
    manifest = folder.read_manifest()
    accounting, turned = mark_accounting(folder.read_accounting(), {r["uid"] for r in removed if r["uid"]})
    ledger.assert_accounted(manifest["counts"]["rows_in"], accounting)
    if turned:
        folder.replace_accounting(accounting)
    return {
        "removed_now": turned,
        "samples_out_of_tars": from_tars,
        "sample_rows_marked": rows,
        "removed_total": len(removed),
        "shards_touched": len(by_shard),
    }


def get_threshold(
    model, detector_info: dict, urls: list[str], options: DedupOptions, leave_out=frozenset()
) -> tuple[float, dict]:
    """The embedding threshold and how it was chosen: --threshold, else calibrated on the corpus's own images at
    options.min_precision (without `leave_out`, the duplicates the exact and pHash tiers found: a duplicate among the
    negatives would push the threshold up), else the saved detector's."""
    from eval.overlap.run import calibrate_on_images

    if options.threshold is not None:
        return float(options.threshold), {"how": "given (--threshold)"}
    keys, images = calibration_sample(urls, 2 * options.calibration_pairs + 200, options.seed, leave_out)
    cal, info, phash_check = calibrate_on_images(model, keys, images, options.overlap_options())
    if cal is not None:
        how = {
            "how": f"calibrated on {len(images)} corpus images (precision {options.min_precision})",
            "precision": _round(cal.precision),
            "recall": _round(cal.recall),
            "auc": _round(cal.auc),
            **info,
            "phash_on_pairs": phash_check,
        }
        return float(cal.threshold), how
    saved = detector_info.get("saved_threshold")
    if saved is None:
        raise WitError("no threshold: the corpus has too few images to calibrate on; pass --threshold (e.g. 0.9)")
    return float(saved), {"how": f"the saved detector's ({detector_info['source']})"}


def _round(x):
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def dedup(out: str, options: DedupOptions) -> dict:
    """Run `wit dedup` on the build folder `out`; returns summary.json's content (plus `examples` for printing)."""
    from eval.overlap.run import get_detector

    started = time.time()
    folder = check_folder(out.rstrip("/"))
    if options.remove:  # finish what an interrupted --remove run planned before looking for more
        previous = read_clusters(folder)
        if previous is not None:
            apply_removals(folder, previous)
    urls = folder.shard_urls()
    target = folder.path(DEDUP)
    os.makedirs(target, exist_ok=True)
    model, detector_info = get_detector(urls, options.overlap_options(), target)
    log(f"signing the samples of {len(urls)} shard(s) ...")
    corpus = corpus_mod.sign_corpus(urls, model, options.ray, options.progress)
    keys, names, sig = in_order(corpus)
    known = clustering.assemble(  # what the exact and pHash tiers find, before any threshold
        len(sig),
        clustering.exact_links(sig.digests) + clustering.phash_links(sig.hashes, sig.ok, options.phash_distance),
    )
    threshold, calibration = get_threshold(
        model, detector_info, urls, options, {(names[i], keys[i]) for i in known.duplicates()}
    )
    found = clustering.clusters(sig, topk_search(sig.vectors, sig.ok), threshold, options.phash_distance, options.k)
    table = cluster_table(keys, names, uids_by_key(folder), found, options.remove)
    table = with_earlier_removals(read_clusters(folder), table)
    folder.write_table(table, folder.path(DEDUP, CLUSTERS_FILE), CLUSTERS_SCHEMA)
    removal = apply_removals(folder, table) if options.remove else None
    summary = _summary(folder, corpus, found, table, threshold, calibration, detector_info, options, removal)
    summary["seconds"] = round(time.time() - started, 1)
    storage.write_json(folder.path(DEDUP, SUMMARY_FILE), summary)
    if options.remove:
        _record(folder, summary)
    return summary | {"examples": _examples(table, options.examples)}


def _summary(folder, corpus, found, table, threshold, calibration, detector_info, options, removal) -> dict:
    tiers = pc.value_counts(table.filter(pc.invert(table["is_representative"]))["tier"]).to_pylist()
    return {
        "samples": len(corpus),
        "shards": len(folder.finished_shards()),
        "skipped": corpus.skipped,
        "clusters": len(set(table["cluster"].to_pylist())),
        "in_clusters": table.num_rows,
        "duplicates": int(pc.sum(pc.invert(table["is_representative"])).as_py() or 0),
        "duplicates_found_now": len(found.duplicates()),
        "by_tier": {t: 0 for t in clustering.TIER_RANK} | {r["values"]: r["counts"] for r in tiers},
        "threshold": _round(threshold) if np.isfinite(threshold) else None,
        "calibration": calibration,
        "phash_distance": options.phash_distance,
        "k": options.k,
        "detector": {k: v for k, v in detector_info.items() if k != "saved_threshold"},
        "removed": removal,
    }


def _record(folder: BuildFolder, summary: dict) -> None:
    """Add the run to manifest.json (`dedup`) and the corpus counts it changed; finished_stage stays download."""
    from wit_builder.materialise import outcome_counts

    manifest = folder.read_manifest()
    accounting = folder.read_accounting()
    manifest["dedup"] = {k: summary[k] for k in ("samples", "clusters", "duplicates", "by_tier", "threshold")}
    manifest["dedup"]["removed"] = summary["removed"]["removed_total"]
    manifest["dedup"]["calibration"] = summary["calibration"]["how"]
    manifest.setdefault("counts", {})["outcome"] = outcome_counts(accounting)
    folder.write_manifest(manifest)


def _examples(table: pa.Table, n: int) -> list[dict]:
    """The first `n` clusters: representative and members with tier and similarity."""
    out: dict[int, dict] = {}
    for r in table.to_pylist():
        if r["cluster"] >= n:
            continue
        c = out.setdefault(
            r["cluster"], {"cluster": r["cluster"], "representative": r["representative"], "members": []}
        )
        if not r["is_representative"]:
            c["members"].append({k: r[k] for k in ("key", "tier", "similarity", "removed")})
    return [out[c] for c in sorted(out)]
