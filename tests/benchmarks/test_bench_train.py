"""The training benchmark runs end to end on two tiny synthetic WebDataset shards: both arms train (finite loss) and
the table has a row per model and arm; a pattern that matches nothing fails with one line that says what to run."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_train.py"


def _shards(folder: Path, per_shard: int = 6) -> str:
    for shard in range(2):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{shard:05d}{i:04d}"
                image = Image.new("RGB", (48 + 8 * i, 40), (40 * i % 256, 90, 200 - 20 * i))
                data = io.BytesIO()
                image.save(data, format="JPEG" if i % 2 else "PNG")
                suffix = "jpg" if i % 2 else "png"
                for name, payload in ((f"{key}.{suffix}", data.getvalue()), (f"{key}.txt", f"a shape {i}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return str(folder / "*.tar")


def test_bench_train_prints_a_row_per_model_and_arm(tmp_path):
    done = subprocess.run(
        [sys.executable, SCRIPT, "--shards", _shards(tmp_path), "--batch-size", "4", "--images", "8", "--warmup", "0"]
        + ["--steps", "1", "--repeats", "2", "--threads", "1", "--plain"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "decoded 8 samples at 64 px" in done.stderr
    for model in ("tiny-vit", "tiny-rn"):
        for arm in ("ours", "openclip", "plain"):
            row = re.search(
                rf"^\| {model} \| {arm} \| ([\d.]+) \| ([\d.]+)x \| [\d.]+x \| [\d.]+ \| [\d.]+x \| [\d.]+ \| "
                rf"[\d, ]+ \| (\S+) \| (\d+) \|",
                done.stdout,
                re.MULTILINE,
            )
            assert row, f"no row for {model} {arm}:\n{done.stdout}"
            speed, loss, peak = float(row[1]), float(row[3]), int(row[4])
            assert speed > 0 and peak > 0
            assert loss == loss and abs(loss) < 100, f"{model} {arm} loss {loss}"  # finite: the arm trained


def test_no_shards_is_one_clear_line(tmp_path):
    done = subprocess.run(
        [sys.executable, SCRIPT, "--shards", str(tmp_path / "none-*.tar")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "make demo" in done.stderr, done.stderr
