"""The overlap report end to end (`wit overlap`): sign every training image, get a near-duplicate detector (trained on
the corpus itself, or a saved one) and calibrate its threshold on synthetic pairs of the evaluation images, index the
training embeddings with faiss, flag each evaluation image by tier, join `wit eval --per-example` predictions and
compute the paper's All / Clean / Overlap statistics, plus caption and class-prompt overlap with MinHash LSH."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from eval.datasets import EvalSet
from eval.neardup.calibrate import calibrate, recall_by_transform, validation_pairs
from eval.neardup.detector import (
    TIERS,
    Signatures,
    best_cosine,
    index_rows,
    match,
    pair_similarity,
    phash_search,
    sign,
)
from eval.neardup.model import DetectorConfig, Embedder
from eval.neardup.train import load_detector, save_detector, train_detector
from eval.overlap import corpus as corpus_mod
from eval.overlap.index import build_index
from eval.overlap.report import OVERLAP_SCHEMA, TEXT_OVERLAP_SCHEMA, ThumbnailPair, write_report
from eval.overlap.stats import overlap_stats
from eval.overlap.text import text_overlap
from eval.templates import fill
from wit_builder.errors import WitError

DETECTOR_FILE = "detector.pt"


@dataclass
class OverlapOptions:
    """How the report is made; the defaults are the ones `wit overlap` documents."""

    detector: str | None = None  # a saved detector (save_detector file); default: train one on the corpus
    train_images: int = 2000  # corpus images the detector trains on (a seeded, spread sample)
    steps: int | None = None  # detector training steps (default: detector_steps, ~40 views per image, 50..400)
    detector_config: DetectorConfig | None = None  # the whole training config (library use; `steps` still applies)
    gray: bool = False  # train the detector on luminance only (DetectorConfig.gray)
    threshold: float | None = None  # the embedding tier's cosine threshold; default: calibrated
    min_precision: float = 0.99  # the calibrated operating point's precision on the synthetic pairs
    calibration_pairs: int = 400  # positive and as many hard-negative pairs
    phash_distance: int = 4
    text_threshold: float = 0.8  # Jaccard of word 3-shingles
    accuracy_of: str = "zeroshot"  # which task's per-example predictions give the accuracies
    thumbnails: int = 24
    ray: bool | None = None
    data_dir: str | None = None
    allow_hosts: tuple[str, ...] = ()
    progress: bool = False
    seed: int = 0
    views: tuple[str, ...] = ()  # training images also signed in these views (detector.REFERENCE_VIEWS); 1+v x index
    per_dataset: bool = True  # each dataset with enough pairs gets its own threshold (False: one pooled threshold)


def log(message: str) -> None:
    print(f"overlap: {message}", file=sys.stderr, flush=True)


def load_eval_sets(specs: list[str], options: OverlapOptions) -> list[EvalSet]:
    """The test split of each evaluation dataset; an empty one is an error."""
    from eval.datasets import load_eval_set

    sets = []
    for spec in specs:
        s = load_eval_set(spec, "test", data_dir=options.data_dir, allow_hosts=options.allow_hosts)
        if len(s) == 0:
            raise WitError(f"evaluation dataset {spec} has no readable test image (skipped: {s.skipped or 'none'})")
        sets.append(s)
    return sets


def expand_specs(value: str, data_dir: str | None) -> list[str]:
    """Comma-separated dataset specs; `all` is every offline task written by `wit eval data` (shift tasks aside)."""
    from eval.tasks import SHIFT_TASKS, available_tasks

    specs = []
    for spec in (v for v in value.split(",") if v):
        if spec == "all":
            specs += [t for t in available_tasks(data_dir) if t not in SHIFT_TASKS]
        else:
            specs.append(spec)
    if not specs:
        raise WitError("--eval names no dataset: give a task name, `all`, or a dataset folder")
    return specs


def load_predictions(results: str, datasets: list[str], task: str) -> dict[str, dict[str, bool]]:
    """{dataset: {key: correct}} from the predictions.parquet beside a `wit eval --out` results file; every dataset
    must have `task` predictions there."""
    if not os.path.isfile(results):
        raise WitError(f"--results {results} does not exist: give the results JSON that `wit eval --out` wrote")
    path = os.path.join(os.path.dirname(results) or ".", "predictions.parquet")
    if not os.path.isfile(path):
        raise WitError(f"no predictions.parquet beside {results}: rerun `wit eval` with --per-example")
    try:
        table = pq.read_table(path, columns=["dataset", "task", "key", "correct"])
    except Exception as err:  # noqa: BLE001 - a malformed file is the user's to fix
        raise WitError(f"{path} is not a readable predictions table ({type(err).__name__}): rerun `wit eval`") from err
    out: dict[str, dict[str, bool]] = {}
    for row in table.to_pylist():
        if row["task"] == task:
            out.setdefault(row["dataset"], {})[row["key"]] = bool(row["correct"])
    for name in datasets:
        if name not in out:
            have = ", ".join(sorted(out)) or "none"
            raise WitError(
                f"{results} has no {task} predictions for dataset {name!r} (it has: {have}): run `wit eval --task "
                f"{task} --dataset {name} --per-example` and pass its results"
            )
    return out


def get_detector(urls: list[str], options: OverlapOptions, out: str) -> tuple[Embedder, dict]:
    """The detector model and how it came to be: loaded from options.detector, or trained on a sample of the corpus
    and saved to OUT/detector.pt."""
    if options.detector:
        model, cfg, saved = load_detector(options.detector)
        return model, {"source": options.detector, "saved_threshold": saved}
    images = corpus_mod.training_sample(urls, options.train_images, options.seed)
    cfg = options.detector_config or DetectorConfig(seed=options.seed, gray=options.gray)
    if options.steps or not options.detector_config:  # a config given whole keeps its steps
        cfg = dataclasses.replace(cfg, steps=options.steps or detector_steps(len(images), cfg))
    log(f"training the near-duplicate detector on {len(images):,} corpus images ({cfg.steps} steps) ...")
    started = time.time()
    model, history = train_detector(images, cfg)
    path = os.path.join(out, DETECTOR_FILE)
    save_detector(model, cfg, path)
    return model, {
        "source": path,
        "trained_on": len(images),
        "steps": cfg.steps,
        "gray": cfg.gray,
        "loss": [round(history[0]["loss"], 4), round(history[-1]["loss"], 4)],
        "train_s": round(time.time() - started, 1),
    }


def detector_steps(n_images: int, cfg: DetectorConfig, views_per_image: int = 40) -> int:
    """Training steps for `n_images`: about `views_per_image` augmented views of each (two per step and batch slot),
    at least 50 and at most cfg.steps; 2,000 images get the full 400, a small corpus is not trained for minutes."""
    return max(min(50, cfg.steps), min(cfg.steps, (n_images * views_per_image) // (2 * cfg.batch)))


MIN_OWN_NEGATIVES = 100  # a dataset gets its own threshold only from this many negatives (P 0.99: one false flag)


@dataclass
class CalibrationScores:
    """The scored calibration pairs of one set of images, before a threshold is chosen."""

    positives: np.ndarray  # cosine of each transformed copy with its source
    negatives: np.ndarray  # each held-out image's best cosine over the pool
    transforms: list  # the edits of each positive's copy
    info: dict  # pool size, queries with duplicates left out
    phash_check: dict  # what the pHash tier finds among the positives

    @staticmethod
    def pooled(parts: list[CalibrationScores]) -> CalibrationScores:
        """All datasets' pairs together (each negative still scored against its own dataset's pool)."""
        return CalibrationScores(
            np.concatenate([p.positives for p in parts]),
            np.concatenate([p.negatives for p in parts]),
            [t for p in parts for t in p.transforms],
            {k: sum(p.info[k] for p in parts) for k in ("pool", "queries_with_duplicates_left_out")},
            {k: sum(p.phash_check[k] for p in parts) for k in ("copies_found", "copies")},
        )


def calibrate_detector(model: Embedder, sets: list[EvalSet], options: OverlapOptions):
    """Calibrate on the evaluation images (never trained on), each dataset apart (see calibration_scores): returns
    the pooled calibration (cal, info, pHash check) of all datasets' pairs together, and per dataset its own."""
    own, parts = {}, []
    for s in sets:
        scores = calibration_scores(model, [f"{s.name}/{k}" for k in s.keys], s.images, options, s.name)
        if scores is not None:
            parts.append(scores)
        own[s.name] = fit_threshold(scores, options)
    return fit_threshold(CalibrationScores.pooled(parts) if parts else None, options), own


def calibrate_on_images(model: Embedder, keys: list[str], images: list[bytes], options: OverlapOptions):
    """Calibrate the embedding tier on one set of images; returns (Calibration or None, {pairs, positives, negatives,
    pool, ...}, what the pHash tier does on the positives)."""
    return fit_threshold(calibration_scores(model, keys, images, options), options)


def calibration_scores(
    model: Embedder, keys: list[str], images: list[bytes], options: OverlapOptions, name: str = "the images"
):
    """Score pairs as the embedding tier is used, top-1 against many images of the same kind: split the images by
    key hash into a reference pool and held-out queries. Positives: transformed copies of pool images against their
    source. Negatives: each held-out image's highest cosine over the pool (pool images that are the same bytes or
    pHash as the query are left out: libraries repeat files). As many positives as negatives. None when the images
    are too few to split."""
    from eval.neardup.hashes import sha256_hex

    in_pool = np.array([int(sha256_hex(k.encode())[:8], 16) % 2 == 0 for k in keys], dtype=bool)
    pool = np.nonzero(in_pool)[0]
    held = np.nonzero(~in_pool)[0]
    if len(pool) < 2 or len(held) < 1:
        log(f"calibration skipped for {name}: too few images to split into a pool and queries")
        return None
    rng = np.random.default_rng(options.seed + 1)
    queries = rng.permutation(held)[: options.calibration_pairs]
    n = len(queries)  # as many positives as negatives: precision is measured on a balanced set
    positives = validation_pairs([images[i] for i in pool], [0] * len(pool), n, 0, rng)
    a, b = sign(model, positives.first, options.views), sign(model, positives.second)
    ok = a.ok & b.ok
    pos_scores = pair_similarity(a, b)[ok]
    close = np.bitwise_count(a.hashes ^ b.hashes)[ok] <= options.phash_distance
    pool_sig = sign(model, [images[i] for i in pool], options.views)
    q = sign(model, [images[i] for i in queries])
    sims = best_cosine(q.vectors, pool_sig.vectors, pool_sig.views)
    same = np.bitwise_count(q.hashes[:, None] ^ pool_sig.hashes[None, :]) <= options.phash_distance
    same |= np.array([[d == e for e in pool_sig.digests] for d in q.digests], dtype=bool).reshape(sims.shape)
    sims[same | ~pool_sig.ok[None, :]] = -np.inf
    neg_scores = sims.max(axis=1) if sims.shape[1] else np.full(len(queries), -np.inf)
    usable = q.ok & np.isfinite(neg_scores)
    return CalibrationScores(
        pos_scores,
        neg_scores[usable],
        [t for t, good in zip(positives.transforms, ok, strict=True) if good],
        {"pool": int(len(pool)), "queries_with_duplicates_left_out": int((q.ok & same.any(axis=1)).sum())},
        {"copies_found": int(close.sum()), "copies": int(ok.sum())},
    )


def fit_threshold(scores: CalibrationScores | None, options: OverlapOptions):
    """The operating point at options.min_precision: (Calibration or None, {pairs, positives, negatives, pool, ...,
    recall_by_transform}, pHash check)."""
    if scores is None:
        return None, {"pairs": 0}, {}
    values = np.r_[scores.positives, scores.negatives]
    labels = np.r_[np.ones(len(scores.positives), bool), np.zeros(len(scores.negatives), bool)]
    info = {"pairs": int(labels.size), "positives": int(labels.sum()), "negatives": int((~labels).sum()), **scores.info}
    try:
        cal = calibrate(values, labels, options.min_precision)
    except WitError as err:
        log(f"calibration skipped: {err}")
        return None, {"pairs": 0}, scores.phash_check
    found = recall_by_transform(
        scores.positives, np.ones(len(scores.positives), bool), scores.transforms, cal.threshold
    )
    info["recall_by_transform"] = {name: {"copies": n, "found": k} for name, (n, k) in found.items()}
    return cal, info, scores.phash_check


def dataset_thresholds(
    names: list[str], pooled: float | None, own: dict, given: float | None, per_dataset: bool
) -> dict[str, tuple[float | None, str]]:
    """Each dataset's threshold and where it comes from: `given` (--threshold) for all; else the dataset's own
    calibration when it had MIN_OWN_NEGATIVES negatives (near-duplicate difficulty differs between datasets: two 7s
    look more alike than two emoji); else the pooled one."""
    chosen = {}
    for name in names:
        cal, info, _ = own.get(name, (None, {}, {}))
        if given is not None:
            chosen[name] = (given, "given")
        elif per_dataset and cal is not None and info.get("negatives", 0) >= MIN_OWN_NEGATIVES:
            chosen[name] = (cal.threshold, "own")
        else:
            chosen[name] = (pooled, "pooled")
    return chosen


def eval_texts(s: EvalSet) -> list[str]:
    """What of an evaluation set can appear in captions: its captions, or its class prompts (templates x names)."""
    if s.captions is not None:
        return [c for caps in s.captions for c in caps]
    templates = s.templates or ["{c}"]
    return [fill(t, name) for name in (s.classnames or []) for t in templates]


def overlap_rows(s: EvalSet, sig: Signatures, matches, corpus: corpus_mod.Corpus) -> pa.Table:
    """overlap.parquet's rows of one evaluation set."""
    names = s.classnames or []
    rows = {name: [] for name in OVERLAP_SCHEMA.names}
    for i, m in enumerate(matches):
        rows["dataset"].append(s.name)
        rows["id"].append(s.keys[i])
        rows["path"].append(f"{s.source}#{s.keys[i]}" if s.source else s.keys[i])
        rows["label"].append(names[int(s.labels[i])] if s.labels is not None and names else None)
        rows["nearest_key"].append(corpus.keys[m.index] if m.index is not None else None)
        rows["similarity"].append(m.similarity)
        rows["is_overlap"].append(m.tier is not None)
        rows["tier"].append(m.tier or ("clean" if sig.ok[i] else "unreadable"))
    return pa.table(rows, schema=OVERLAP_SCHEMA)


def overlap_report(train: str, eval_spec: str, out: str, results: str | None, options: OverlapOptions) -> dict:
    """Make the report in `out` (a local folder); returns summary.json's content."""
    started = clock = time.time()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.time()
        timings[name] = round(now - clock, 2)
        clock = now

    os.makedirs(out, exist_ok=True)
    specs = expand_specs(eval_spec, options.data_dir)
    sets = load_eval_sets(specs, options)
    lap("load_eval_s")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise WitError(f"--eval names a dataset twice ({', '.join(names)})")
    classified = [s.name for s in sets if s.labels is not None]  # a retrieval set has overlap but no accuracy here
    predictions = load_predictions(results, classified, options.accuracy_of) if results else None
    urls = corpus_mod.shard_urls(train)
    model, detector_info = get_detector(urls, options, out)
    lap("detector_s")
    (cal, cal_info, phash_check), own = calibrate_detector(model, sets, options)
    lap("calibrate_s")
    threshold = options.threshold
    if threshold is None:
        threshold = cal.threshold if cal is not None else detector_info.get("saved_threshold")
    thresholds = dataset_thresholds(names, threshold, own, options.threshold, options.per_dataset)
    if any(t is None for t, _ in thresholds.values()):
        raise WitError("no threshold: the evaluation images gave no calibration pairs; pass --threshold")
    log(f"signing the training images of {len(urls)} shard(s) ...")
    corpus = corpus_mod.sign_corpus(urls, model, options.ray, options.progress, options.views)
    lap("sign_train_s")
    refs = corpus.signatures
    vectors, owner = index_rows(refs)
    index = build_index(vectors)
    lap("index_s")
    in_views = f" in {1 + len(options.views)} views each" if options.views else ""
    log(
        f"indexed {int(refs.ok.sum()):,} training images{in_views} ({index.kind}); matching "
        f"{sum(map(len, sets)):,} evaluation images"
    )

    def search(queries: np.ndarray):
        sims, ids = index.search(queries, 1)
        return sims[:, 0], owner[ids[:, 0]]

    hash_search = phash_search(refs.hashes, refs.ok)
    tables, stats, skipped, text_info, text_tables, closest = [], {}, {}, {}, [], []
    for s in sets:
        sig = sign(model, s.images)
        matches = match(sig, refs, thresholds[s.name][0], options.phash_distance, search, hash_search)
        table = overlap_rows(s, sig, matches, corpus)
        tables.append(table)
        skipped[s.name] = {**s.skipped, **sig.skipped}
        for i, m in enumerate(matches):
            if m.index is not None:
                closest.append((m.similarity, s, i, m))
        if predictions is not None and s.name in classified:
            stats[s.name], missing = _stats(s.name, table, predictions[s.name])
            if missing:
                skipped[s.name]["no_prediction"] = missing
        text_info[s.name], rows = _text(s, corpus, options.text_threshold)
        text_tables.append(rows)
    rows = pa.concat_tables(tables)
    lap("match_eval_s")
    info = {
        "train": {
            "source": train,
            "shards": len(urls),
            "images": len(corpus),
            "indexed": int(refs.ok.sum()),
            "index": index.kind,
            "index_vectors": index.size,
            "skipped": corpus.skipped,
        },
        "detector": {
            **{k: v for k, v in detector_info.items() if k != "saved_threshold"},
            "threshold": _round(threshold),
            "calibrated": options.threshold is None and cal is not None,
            "precision": _round(cal.precision) if cal else None,
            "recall": _round(cal.recall) if cal else None,
            "auc": _round(cal.auc) if cal else None,
            "min_precision": options.min_precision,
            **cal_info,
            "phash_distance": options.phash_distance,
            "phash_on_pairs": phash_check,
            "views": list(options.views),
            "note": "no threshold reached the target precision: the embedding tier flags nothing"
            if threshold == float("inf")
            else "",
            "per_dataset": options.per_dataset,
            "min_own_negatives": MIN_OWN_NEGATIVES,
            "datasets": {name: _own_calibration(own.get(name), *thresholds[name]) for name in names},
        },
        "overlap": {
            name: {
                "n": int(sum(1 for d in rows.column("dataset").to_pylist() if d == name)),
                **_tier_counts(rows, name),
                "threshold": _round(thresholds[name][0]) if thresholds[name][0] != float("inf") else None,
                "threshold_from": thresholds[name][1],
            }
            for name in names
        },
        "text": text_info,
        "skipped": skipped,
        "accuracy_of": options.accuracy_of if predictions is not None else None,
        "results": results,
        "seconds": round(time.time() - started, 1),
        "timings": timings,
    }
    if info["detector"]["threshold"] == float("inf"):
        info["detector"]["threshold"] = None
    paths = write_report(
        out,
        rows,
        stats,
        _thumbnails(closest, corpus, options.thumbnails),
        info=info,
        text_rows=pa.concat_tables(text_tables),
        curve=cal.curve if cal is not None else None,
    )
    log(f"report: {paths['index.html']}")
    with open(paths["summary.json"]) as f:
        return json.load(f)


def _own_calibration(own, threshold: float, source: str) -> dict:
    """A dataset's threshold (None: nothing reached the target precision), where it comes from, and its own
    calibration's figures."""
    cal, info, _ = own or (None, {}, {})
    return {
        "threshold": _round(threshold) if threshold != float("inf") else None,
        "from": source,
        "precision": _round(cal.precision) if cal else None,
        "recall": _round(cal.recall) if cal else None,
        "auc": _round(cal.auc) if cal else None,
        "positives": info.get("positives", 0),
        "negatives": info.get("negatives", 0),
    }


def _round(x):
    return None if x is None else round(float(x), 4) if np.isfinite(x) else float(x)


def _tier_counts(rows: pa.Table, name: str) -> dict:
    tiers = Counter(t for d, t in zip(rows.column("dataset").to_pylist(), rows.column("tier").to_pylist()) if d == name)
    n = sum(tiers.values())
    flagged = sum(tiers[t] for t in TIERS)
    return {
        "overlap": flagged,
        "overlap_percent": round(100 * flagged / n, 2) if n else None,
        **{t: tiers[t] for t in (*TIERS, "clean", "unreadable")},
    }


def _stats(name: str, table: pa.Table, correct: dict[str, bool]):
    """The dataset's statistics over its examples that have a prediction; the number of readable ones without."""
    flags, hits, missing = [], [], 0
    for key, overlap, tier in zip(
        table.column("id").to_pylist(), table.column("is_overlap").to_pylist(), table.column("tier").to_pylist()
    ):
        if key not in correct:
            missing += tier != "unreadable"
            continue
        flags.append(overlap)
        hits.append(correct[key])
    if not flags:
        raise WitError(f"none of {name}'s predictions match its examples' keys: were they made on another dataset?")
    return overlap_stats(hits, flags, name), missing


def _text(s: EvalSet, corpus: corpus_mod.Corpus, threshold: float) -> tuple[dict, pa.Table]:
    texts = eval_texts(s)
    pairs = text_overlap(texts, corpus.captions, threshold)
    matched = sorted({p.eval_i for p in pairs})
    table = pa.table(
        {
            "dataset": [s.name] * len(pairs),
            "eval_text": [texts[p.eval_i] for p in pairs],
            "train_key": [corpus.keys[p.train_j] for p in pairs],
            "train_caption": [corpus.captions[p.train_j] for p in pairs],
            "jaccard": [p.jaccard for p in pairs],
        },
        schema=TEXT_OVERLAP_SCHEMA,
    )
    return {"texts": len(texts), "matched": len(matched), "pairs": len(pairs)}, table


def _thumbnails(closest: list, corpus: corpus_mod.Corpus, k: int) -> list[ThumbnailPair]:
    """The k closest evaluation/training pairs, flagged or not, with the training images read back from the shards."""
    best = sorted(closest, key=lambda c: -c[0])[:k]
    wanted: dict[str, set[str]] = {}
    for _, _, _, m in best:
        wanted.setdefault(corpus.shards[m.index], set()).add(corpus.keys[m.index])
    images = corpus_mod.read_images(wanted)
    out = []
    for sim, s, i, m in best:
        train_image = images.get((corpus.shards[m.index], corpus.keys[m.index]))
        if train_image is None:
            continue
        label = (s.classnames or [""])[int(s.labels[i])] if s.labels is not None and s.classnames else s.keys[i]
        verdict = m.tier or "not flagged"
        out.append(ThumbnailPair(s.images[i], train_image, sim, s.name, f"{label} [{verdict}]", corpus.keys[m.index]))
    return out
