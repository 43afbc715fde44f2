"""`wit study scaling`: two widths trained on the same tiny shards (Ray Train in the session's cluster) give
results.parquet rows at each width's training compute, scaling.png and the summary section, read back by `wit sql`;
bad input (an unknown width, a corpus smaller than one batch, no --data) is one clear line before any training."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.studies.scaling import gflops_per_sample
from eval.tasks import build_tasks
from pipelines import cli
from trainer.config import MODELS


def error_lines(capsys) -> list[str]:
    """The `wit: error` lines on stderr, which must end it."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("wit: error")]
    assert errors and err[-1] == errors[-1]
    return errors


def test_an_unknown_width_lists_the_registered_ones(good_shards, tmp_path, capsys):
    args = ["study", "scaling", "--data", good_shards, "--widths", "tiny-vit-w32,huge", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("wit: error: --widths 'tiny-vit-w32,huge': unknown model huge: choose from ")
    assert "tiny-vit-w64" in line and "ViT-B/32" in line


def test_a_corpus_smaller_than_a_batch_says_how_many_samples_are_needed(good_shards, tmp_path, capsys):
    args = [
        "study",
        "scaling",
        "--data",
        good_shards,
        "--tasks",
        "digits",
        "--out",
        str(tmp_path),
        "--batch-size",
        "64",
    ]
    assert cli.main(args) == 2
    (line,) = error_lines(capsys)
    assert line == (
        f"wit: error: --data {good_shards} holds 24 samples, but the scaling study needs at least 64 (one --batch-size 64 "
        "batch per width): build a bigger corpus or lower --batch-size"
    )
    assert not (tmp_path / "runs").exists()


def test_scaling_needs_data_not_a_checkpoint(tmp_path, capsys):
    assert cli.main(["study", "scaling", "--checkpoint", "RUN", "--out", str(tmp_path)]) == 2
    (line,) = error_lines(capsys)
    assert "trains its own models: give --data OUT" in line


def test_two_widths_end_to_end(good_shards, tmp_path, ray_session, capsys):
    data_dir = tmp_path / "tasks"
    build_tasks(str(data_dir), ["digits"], progress=False)
    out = tmp_path / "study"
    widths = ["tiny-vit-w32", "tiny-vit-w64"]
    args = ["study", "scaling", "--data", good_shards, "--data-dir", str(data_dir), "--out", str(out)]
    args += ["--widths", ",".join(widths), "--epochs", "1", "--batch-size", "8"]
    assert cli.main(args) == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["task"] for r in rows} == {"scaling"}
    errors = [r for r in rows if r["metric"] == "zeroshot_error"]
    assert sorted((r["arm"], r["dataset"]) for r in errors) == [(w, d) for w in widths for d in ("digits", "mean")]
    for r in errors:
        assert r["x"] == pytest.approx(gflops_per_sample(MODELS[r["arm"]]) * 24)  # 3 steps of 8: the same data
        assert 0 <= r["value"] <= 1 and r["seed"] == 0 and r["chance"] == pytest.approx(0.1)
    seen = {r["arm"]: r["value"] for r in rows if r["metric"] == "samples_seen"}
    assert seen == {w: 24.0 for w in widths}
    for w in widths:
        assert (out / "runs" / w / "config.json").exists() and (out / "runs" / w / "summary.json").exists()
    summary = (out / "summary.md").read_text()
    assert "## Compute scaling (Figure 9)" in summary and "| tiny-vit-w32 | 0 |" in summary
    assert "Fitted line: log10(error) = " in summary and "a power law in compute" in summary
    with Image.open(out / "scaling.png") as png:
        assert png.format == "PNG" and png.size[0] >= 400

    # a rerun reuses the finished runs (no training) and gives the same rows
    capsys.readouterr()
    assert cli.main(args) == 0
    assert capsys.readouterr().err.count("reusing the finished run") == 2
    again = pq.read_table(out / "results.parquet").to_pylist()
    assert [(r["arm"], r["metric"], r["value"]) for r in again] == [(r["arm"], r["metric"], r["value"]) for r in rows]
    assert all(r["value"] > 0 for r in again if r["metric"] == "train_s")  # the runs' own wall time, kept

    query = "SELECT arm, x, value FROM results WHERE dataset = 'mean' AND metric = 'zeroshot_error' ORDER BY x"
    assert cli.main(["sql", str(out), query]) == 0
    printed = capsys.readouterr().out
    assert printed.index("tiny-vit-w32") < printed.index("tiny-vit-w64")
