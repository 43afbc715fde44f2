"""The probe benchmark runs end to end on tiny features and prints both arms with their fits, C and top-1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_probe.py"


def test_bench_probe_prints_both_arms():
    done = subprocess.run(
        [sys.executable, SCRIPT, "--sizes", "120x8x3", "--folds", "2"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| 120 x 8")]
    assert [r[1].strip() for r in rows] == ["linear_probe (val split, coarse+fine)", "LogisticRegressionCV (2-fold)"]
    assert [int(r[2]) for r in rows] == [22, 43]
    assert rows[0][6].strip() == "1.00x"
    assert all(0.0 <= float(r[5]) <= 1.0 and float(r[4]) > 0 for r in rows)
