"""The Ray-overhead benchmark runs end to end on tiny synthetic shards: both arms train from the same seed and the
table reports each arm's samples/s and the overhead."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_train import _shards

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_overhead.py"


@pytest.mark.slow
def test_bench_train_overhead_prints_both_arms(tmp_path, no_driver_ray):
    pattern = _shards(tmp_path, per_shard=12)  # 24 samples
    shards = pattern.replace("*.tar", "{00000..00001}.tar")
    done = subprocess.run(
        [sys.executable, SCRIPT, "--data", shards, "--batch-size", "4", "--steps", "2", "--warmup", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert {"plain PyTorch loop", "Ray Train + Ray Data (`wit train`)"} <= set(rows)
    assert re.search(r"overhead of Ray: -?\d+\.\d %", done.stdout)
