"""`wit overlap` on the demo, phase by phase: detector training, calibration, signing the training images (SHA-256,
pHash, embedding), the faiss index, and matching the evaluation images; wall seconds and images per second.

    .venv/bin/python benchmarks/bench_overlap.py                     # after `make demo`: ~/.cache/wit/demo
    .venv/bin/python benchmarks/bench_overlap.py --demo DIR --detector DIR/overlap/detector.pt   # skip training

The input is what `wit demo` step 7 uses: the shards the demo trained on, every offline classification task, the
zero-shot predictions of step 6. Results in docs/benchmarks.md; docs/scale.md projects the signing rate to 400M.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    import pyarrow.parquet as pq

    from eval.overlap.run import OverlapOptions, overlap_report
    from pipelines.overlap import summary_table
    from wit_builder.layout import BuildFolder
    from wit_builder.paths import cache_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default=str(cache_dir() / "demo"), help="a `wit demo --out` folder")
    ap.add_argument("--detector", help="a saved detector: skip training")
    ap.add_argument("--ray", action=argparse.BooleanOptionalAction, default=None, help="sign with Ray Data")
    args = ap.parse_args()

    build = next((os.path.join(args.demo, d) for d in sorted(os.listdir(args.demo)) if d.startswith("build")), None)
    if build is None:
        sys.exit(f"no build folder under {args.demo}: run `make demo` first")
    shards = BuildFolder(build).finished_shards()[:-1]  # the demo trains on every shard but the last
    train = f"{build}/shards/{{{shards[0]}..{shards[-1]}}}.tar"
    results = os.path.join(args.demo, "eval", "results.json")
    rows = pq.read_table(os.path.join(args.demo, "eval", "predictions.parquet"), columns=["dataset", "task"])
    names = sorted({d for d, t in zip(*rows.to_pydict().values()) if t == "zeroshot"})
    options = OverlapOptions(data_dir=os.path.join(args.demo, "eval-data"), detector=args.detector, ray=args.ray)
    with tempfile.TemporaryDirectory() as out:
        summary = overlap_report(train, ",".join(names), out, results, options)
    t = summary["timings"]
    n_train = summary["train"]["images"]
    n_eval = sum(o["n"] for o in summary["overlap"].values())
    det = summary["detector"]
    print(f"\ntraining images {n_train:,} in {len(shards)} shards; evaluation images {n_eval:,} in {len(names)} sets\n")
    print(f"| {'phase':<34} | {'seconds':>8} | {'images/s':>9} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 11}|")
    rates = {
        "sign_train_s": n_train,
        "index_s": n_train,
        "match_eval_s": n_eval,
    }
    labels = {
        "load_eval_s": "load evaluation sets",
        "detector_s": f"train detector ({det.get('steps', '-')} steps)" if "steps" in det else "load detector",
        "calibrate_s": f"calibrate ({det.get('pairs', 0)} pairs)",
        "sign_train_s": "sign training images",
        "index_s": f"faiss index ({summary['train']['index']})",
        "match_eval_s": "sign + match eval images, text",
    }
    for key, label in labels.items():
        seconds = t.get(key, 0.0)
        n = rates.get(key)
        rate = f"{n / seconds:,.0f}" if n and seconds else "-"
        print(f"| {label:<34} | {seconds:>8.1f} | {rate:>9} |")
    print(f"| {'total':<34} | {summary['seconds']:>8.1f} | {'':>9} |\n")
    print(summary_table(summary))


if __name__ == "__main__":
    main()
