"""The near-duplicate detector's flags, shared by `wit overlap` and `wit dedup`: a saved detector, or the training
steps and input of one trained on the corpus."""

from __future__ import annotations

import argparse


def add_detector_flags(parser: argparse.ArgumentParser) -> None:
    """--detector, --detector-steps, --detector-gray."""
    parser.add_argument(
        "--detector", default=None, help="a saved detector (detector.pt); default: train one on the corpus"
    )
    parser.add_argument(
        "--detector-steps",
        type=int,
        default=None,
        help="training steps of a detector trained here (default: ~40 views per image, 50 to 400)",
    )
    parser.add_argument(
        "--detector-gray",
        action="store_true",
        help="train the detector on luminance only: with more steps the benchmark's best (docs/overlap.md)",
    )


def detector_options(args: argparse.Namespace) -> dict:
    """The parsed detector flags as option fields: detector, steps, gray."""
    return {"detector": args.detector, "steps": args.detector_steps, "gray": args.detector_gray}
