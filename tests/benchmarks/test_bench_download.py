"""The download benchmark runs end to end on a few generated images and prints its table: it spawns pool workers
that re-import the script, which broke once without any test noticing (img2dataset's pool then respawned dying
workers forever)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_download_prints_its_table():
    done = subprocess.run(
        [
            sys.executable,
            ROOT / "benchmarks" / "bench_download.py",
            "--generated",
            "--images",
            "12",
            "--repeats",
            "1",
            "--processes",
            "1",
            "--threads",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for run in ("img2dataset", "ours"):  # every image downloaded by each, and a row in the table
        assert re.search(rf"^\s+{run}\s+12 ok", done.stderr, re.MULTILINE), done.stderr[-2000:]
        assert re.search(rf"^\| {run} \| [\d.]+ \| [\d.]+x \|", done.stdout, re.MULTILINE), done.stdout[-2000:]
