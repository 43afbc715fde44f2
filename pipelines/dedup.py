"""Find near-duplicate images within a built corpus, and optionally take them out.

    wit dedup OUT                        report: clusters, duplicates by tier, a few example clusters
    wit dedup OUT --remove               ... and remove every cluster's members but its first sample
    wit dedup OUT --detector DET.pt --threshold 0.9

OUT is a `wit build --out` folder with finished shards. Three tiers link two samples: the same bytes (SHA-256), the
same perceptual hash within --phash-distance bits, and the near-duplicate detector's embedding cosine at or above the
threshold among each sample's --k nearest neighbours (faiss). Linked samples form clusters (transitively); each
cluster's representative is its first sample in shard/key order and is kept. By default a detector is trained on a
sample of the corpus (saved to OUT/dedup/detector.pt) and its threshold calibrated on the corpus's own images at
precision 0.99. Output: OUT/dedup/clusters.parquet (the `duplicates` view of `wit sql OUT`) and summary.json.

--remove rewrites the affected shards without the duplicates (tar renamed into place; the shard's Parquet rows get
status near_duplicate; sizes.json follows) and turns their accounting rows from kept to filtered with reason
near_duplicate; manifest.json records the run under `dedup`. Rerunning removes nothing more. See docs/dedup.md.
"""

if __name__ == "__main__":
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import sys

from pipelines.detector_flags import add_detector_flags, detector_options

HELP = "find near-duplicate images within a built corpus; with --remove, take them out of shards and accounting"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="a `wit build --out` folder with finished shards (local)")
    add_detector_flags(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="embedding cosine at or above which two samples are duplicates; default: calibrated at precision 0.99",
    )
    parser.add_argument(
        "--phash-distance", type=int, default=4, help="pHash Hamming distance still a duplicate (default 4)"
    )
    parser.add_argument("--k", type=int, default=10, help="embedding neighbours compared per sample (default 10)")
    parser.add_argument("--remove", action="store_true", help="remove the duplicates (default: report only)")
    parser.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sign the images on Ray Data (default: from 50,000 samples on)",
    )
    parser.add_argument("--examples", type=int, default=5, help="example clusters to print (default 5)")


def options_from_args(args: argparse.Namespace):
    """DedupOptions from the parsed flags."""
    from eval.overlap.dedup import DedupOptions

    return DedupOptions(
        **detector_options(args),
        threshold=args.threshold,
        phash_distance=args.phash_distance,
        k=args.k,
        remove=args.remove,
        ray=args.ray,
        examples=args.examples,
    )


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    print(run_dedup(args.out, options))
    return 0


def run_dedup(out: str, options) -> str:
    """Run wit dedup on `out`; returns the printable report."""
    from eval.overlap.dedup import dedup

    return report(out, dedup(out, options))


def report(out: str, summary: dict) -> str:
    """A readable table of the run, a few example clusters, and what to do next."""
    removed = summary["removed"]
    lines = [
        f"dedup of {out}: {summary['samples']:,} samples in {summary['shards']} shard(s)",
        f"  threshold {summary['threshold']} ({summary['calibration']['how']}); pHash distance "
        f"{summary['phash_distance']}; top-{summary['k']} neighbours",
        f"  {'tier':<12}{'duplicates':>12}",
        *(f"  {tier:<12}{n:>12,}" for tier, n in summary["by_tier"].items()),
        f"  {'total':<12}{summary['duplicates']:>12,}  in {summary['clusters']:,} clusters",
    ]
    for c in summary["examples"]:
        members = ", ".join(
            f"{m['key']} ({m['tier']} {m['similarity']:.3f}{', removed' if m['removed'] else ''})" for m in c["members"]
        )
        lines.append(f"  cluster {c['cluster']}: keeps {c['representative']} <- {members}")
    if removed is None:
        lines.append(f"report only: `wit dedup {out} --remove` takes the {summary['duplicates']:,} duplicates out")
    else:
        lines.append(
            f"removed {removed['removed_now']:,} samples now ({removed['removed_total']:,} in all) from "
            f"{removed['shards_touched']} shard(s); accounting: filtered/near_duplicate"
        )
    lines.append(f'try: wit sql {out} "SELECT tier, count(*) FROM duplicates WHERE NOT is_representative GROUP BY 1"')
    return "\n".join(lines)


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
