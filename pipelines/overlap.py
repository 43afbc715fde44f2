"""How much of each evaluation set is also in the training corpus, and does it inflate accuracy? (the paper's
section 5 and Appendix C; docs/overlap.md)

    wit overlap --train OUT --eval all --results res/results.json --out REPORT
    ray job submit --working-dir . -- python pipelines/overlap.py --train s3://bucket/OUT --eval clipart --out REPORT

TRAIN: a `wit build --out` folder, a folder of WebDataset .tar shards (.jpg/.png/.webp members, any names, with or
without sizes.json), a brace pattern or one .tar; local or s3://. DATASET: an offline task name (`wit eval data`),
`all`, an ImageFolder directory or a CLIP_benchmark-style folder; several comma-separated. Its test split is checked.

Each evaluation image is flagged by the first of three tiers that matches a training image: the same bytes
(SHA-256), a perceptual hash at most --phash-distance bits away, or the near-duplicate detector's cosine at or above
its threshold. The detector is trained on the corpus's own images (or --detector FILE) and its threshold calibrated,
per dataset, on synthetic pairs of the evaluation images at precision --min-precision: transformed copies of its
images against their source versus its other images against their most similar one (two 7s look more alike than two
emoji). A dataset with under 100 such negatives, or every one with --one-threshold, uses the pooled threshold.
Training embeddings go into a faiss index (exact up to 200k images, IVF-PQ above); from 50k images signing runs as
Ray Data batch inference.

With --results (a `wit eval --per-example` results JSON), per dataset: accuracy on All, Clean and Overlap, a one-sided
binomial test of Overlap against Clean, a 99.5% Clopper-Pearson interval and the estimated effect on All. Without it,
the overlap alone. Captions and class prompts are matched against training captions with MinHash LSH.

REPORT gets overlap.parquet (one row per evaluation image), text_overlap.parquet, summary.json, index.html (plots,
tables, thumbnails of the closest pairs) and detector.pt; `wit sql REPORT "SELECT ..."` reads the tables.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import math
import sys

from pipelines.detector_flags import add_detector_flags, detector_options

HELP = "the overlap / contamination report: near-duplicates of evaluation images in the training corpus"
DEFAULT_OUT = "wit-overlap"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eval.overlap.run import OverlapOptions

    d = OverlapOptions()
    parser.add_argument("--train", required=True, help="the training corpus: a build folder, shard folder or pattern")
    parser.add_argument("--eval", default="all", help="task name(s), all, or dataset folder(s); comma-separated")
    parser.add_argument("--results", help="a `wit eval --per-example` results JSON: accuracies on All/Clean/Overlap")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"the report folder (local; default {DEFAULT_OUT})")
    parser.add_argument("--data-dir", help="where `wit eval data` wrote the tasks (default $WIT_CACHE/eval)")
    add_detector_flags(parser)
    parser.add_argument(
        "--detector-images", type=int, default=d.train_images, help=f"corpus images to train on ({d.train_images})"
    )
    parser.add_argument(
        "--reference-views",
        action="store_true",
        help="also index each training image mirrored, grayscale, zoomed-in and with a margin (9 vectors per image); "
        "calibrated the same way, finds more copies",
    )
    parser.add_argument(
        "--threshold", type=float, help="the detector's cosine threshold for every dataset (default: calibrated)"
    )
    parser.add_argument(
        "--one-threshold",
        action="store_true",
        help="calibrate one threshold on all datasets' pairs together (default: each dataset with at least "
        "100 negative pairs gets its own, the rest the pooled one)",
    )
    parser.add_argument(
        "--min-precision", type=float, default=d.min_precision, help=f"calibration target ({d.min_precision})"
    )
    parser.add_argument(
        "--phash-distance", type=int, default=d.phash_distance, help=f"pHash tier bits ({d.phash_distance})"
    )
    parser.add_argument(
        "--text-threshold", type=float, default=d.text_threshold, help=f"text Jaccard ({d.text_threshold})"
    )
    parser.add_argument(
        "--accuracy-of", default=d.accuracy_of, help=f"whose predictions give the accuracies ({d.accuracy_of})"
    )
    parser.add_argument("--thumbnails", type=int, default=d.thumbnails, help=f"closest pairs shown ({d.thumbnails})")
    parser.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sign the corpus with Ray Data batch inference (default: from 50,000 images on)",
    )
    parser.add_argument("--allow-host", action="append", default=[], help="a host a url dataset may fetch from")


def options_from(args: argparse.Namespace):
    from eval.neardup.detector import REFERENCE_VIEWS
    from eval.overlap.run import OverlapOptions
    from wit_builder.errors import WitError

    if args.out.startswith("s3://"):
        raise WitError("--out must be a local folder for the report (TRAIN may be on s3://)")
    if not 0 < args.min_precision <= 1:
        raise WitError(f"--min-precision must be in (0, 1], got {args.min_precision}")
    if args.detector_images < 2:
        raise WitError(f"--detector-images must be at least 2, got {args.detector_images}")
    return OverlapOptions(
        **detector_options(args),
        train_images=args.detector_images,
        views=REFERENCE_VIEWS if args.reference_views else (),
        threshold=args.threshold,
        per_dataset=not args.one_threshold,
        min_precision=args.min_precision,
        phash_distance=args.phash_distance,
        text_threshold=args.text_threshold,
        accuracy_of=args.accuracy_of,
        thumbnails=args.thumbnails,
        ray=args.ray,
        data_dir=args.data_dir,
        allow_hosts=tuple(args.allow_host),
        progress=sys.stderr.isatty(),
    )


def run(args: argparse.Namespace) -> int:
    from eval.overlap.run import overlap_report

    summary = overlap_report(args.train, args.eval, args.out, args.results, options_from(args))
    print(summary_table(summary))
    print(f"report: {args.out}/index.html (and overlap.parquet, text_overlap.parquet, summary.json)")
    return 0


def summary_table(summary: dict) -> str:
    """The table printed at the end: per dataset the overlap by tier and, with results, the accuracies."""
    det = summary["detector"]
    pooled = "all datasets' pairs pooled" if det.get("per_dataset") else "one threshold for all"
    if det["threshold"] is None:
        line = (
            f"detector ({pooled}): no threshold reaches precision {det['min_precision']} on the {det['pairs']} "
            f"calibration pairs (ROC AUC {det['auc']}): the embedding tier flags nothing there; SHA-256 and pHash "
            "still do"
        )
    else:
        line = (
            f"detector ({pooled}): threshold {det['threshold']} (precision {det['precision']}, recall "
            f"{det['recall']}, ROC AUC {det['auc']} on {det['pairs']} calibration pairs"
            + (f", training images in {1 + len(det['views'])} views" if det.get("views") else "")
            + ")"
        )
    lines = [line]
    weakest = [(name, c) for name, c in (det.get("recall_by_transform") or {}).items() if c["copies"]][:3]
    if weakest and det["threshold"] is not None:  # without a threshold the tier finds nothing, of any kind
        rates = ", ".join(f"{name} {c['found'] / c['copies']:.2f}" for name, c in weakest)
        lines.append(f"detector: copies it misses most, recall by transform: {rates} (all in index.html)")
    if det.get("per_dataset"):
        lines.append(
            "detector: a dataset with enough calibration pairs uses its own threshold (column threshold; "
            "'pooled' marks one that uses the pooled one, '-' one where none reaches the target precision)"
        )
    head = (
        "| dataset | n | overlap % | exact | phash | embedding | threshold | All | Clean | Overlap | Overlap-Clean | p "
        "| on All |"
    )
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, o in summary["overlap"].items():
        s = summary["datasets"].get(name, {})
        cells = [
            name,
            str(o["n"]),
            _num(o["overlap_percent"]),
            str(o["exact"]),
            str(o["phash"]),
            str(o["embedding"]),
            _threshold(o),
            _pct(s.get("acc_all")),
            _pct(s.get("acc_clean")),
            _pct(s.get("acc_overlap")),
            _pct(s.get("difference")),
            "-" if s.get("p_value") is None else f"{s['p_value']:.3g}",
            _pct(s.get("effect_all")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    texts = summary.get("text") or {}
    if texts:
        lines.append("text overlap: " + ", ".join(f"{n} {t['matched']}/{t['texts']}" for n, t in texts.items()))
    return "\n".join(lines)


def _threshold(o: dict) -> str:
    """A dataset's threshold cell: the cosine, '-' when none reached the target precision, 'pooled' marked."""
    value = "-" if o.get("threshold") is None else f"{o['threshold']:.4f}"
    return f"{value} pooled" if o.get("threshold_from") == "pooled" else value


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _num(x) -> str:
    return "-" if x is None else f"{x:.1f}"


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
