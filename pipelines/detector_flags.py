"""The near-duplicate detector's flags, shared by `wit overlap` and `wit dedup` (and `wit build --dedup`): a saved
detector, or the training steps and input of one trained on the corpus."""

from __future__ import annotations

import argparse


def add_detector_flags(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """--detector, --detector-steps, --detector-gray (each after `prefix`, e.g. "dedup-")."""
    parser.add_argument(
        f"--{prefix}detector", default=None, help="a saved detector (detector.pt); default: train one on the corpus"
    )
    parser.add_argument(
        f"--{prefix}detector-steps",
        type=int,
        default=None,
        help="training steps of a detector trained here (default: ~40 views per image, 50 to 400)",
    )
    parser.add_argument(
        f"--{prefix}detector-gray",
        action="store_true",
        help="train the detector on luminance only: with more steps the benchmark's best (docs/overlap.md)",
    )


def detector_options(args: argparse.Namespace, prefix: str = "") -> dict:
    """The parsed detector flags as option fields: detector, steps, gray."""
    p = prefix.replace("-", "_")
    return {
        "detector": getattr(args, f"{p}detector"),
        "steps": getattr(args, f"{p}detector_steps"),
        "gray": getattr(args, f"{p}detector_gray"),
    }
