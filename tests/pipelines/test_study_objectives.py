"""`wit study objectives`: the three objectives trained on the same tiny shards (Ray Train in the session's cluster),
each evaluated zero-shot at its kept checkpoints, give results.parquet rows against images seen, objectives.png and the
summary section, read back by `wit sql`; bad input is one clear line before any training."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.tasks import build_tasks
from pipelines import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from test_data import make_shards  # noqa: E402 - the shard maker of tests/trainer


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n_shards=2, per_shard=12, corrupt=False)  # 24 good pairs
    return str(folder)


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("wit: error: ")
    return err[-1]


def test_an_unknown_objective_lists_the_known_ones(shards, tmp_path, capsys):
    args = ["study", "objectives", "--data", shards, "--objectives", "bow,mlm", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    assert error_line(capsys) == (
        "wit: error: --objectives 'bow,mlm': unknown objective mlm: choose from contrastive, bow, caption"
    )


def test_a_corpus_smaller_than_a_batch_says_how_many_samples_are_needed(shards, tmp_path, capsys):
    args = ["study", "objectives", "--data", shards, "--tasks", "rendered-text", "--out", str(tmp_path)]
    args += ["--batch-size", "32"]
    assert cli.main(args) == 2
    assert error_line(capsys) == (
        f"wit: error: --data {shards} holds 24 samples, but the objectives study needs at least 32 (one --batch-size "
        "32 batch per arm): build a bigger corpus or lower --batch-size"
    )
    assert not (tmp_path / "runs").exists()


def test_objectives_need_data_not_a_checkpoint(tmp_path, capsys):
    assert cli.main(["study", "objectives", "--checkpoint", "RUN", "--out", str(tmp_path)]) == 2
    assert "the objectives study trains its own models: give --data OUT" in error_line(capsys)


def test_three_objectives_end_to_end(shards, tmp_path, ray_session, capsys):
    data_dir = tmp_path / "tasks"
    build_tasks(str(data_dir), ["rendered-text"], progress=False)  # 90 test images, 2 classes: a cheap caption score
    out = tmp_path / "study"
    args = ["study", "objectives", "--data", shards, "--data-dir", str(data_dir), "--out", str(out)]
    args += ["--epochs", "1", "--batch-size", "8", "--points", "2"]
    assert cli.main(args) == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["task"] for r in rows} == {"objectives"}
    acc = [r for r in rows if r["metric"] == "zeroshot_acc1"]
    # 3 steps of 8 with --points 2: checkpoints every 2 steps, at step 2 and at the end (step 3)
    expected = [
        (o, d, x) for o in ("contrastive", "bow", "caption") for x in (16.0, 24.0) for d in ("rendered-text", "mean")
    ]
    assert sorted((r["arm"], r["dataset"], r["x"]) for r in acc) == sorted(expected)
    for r in acc:
        assert 0 <= r["value"] <= 1 and r["seed"] == 0 and r["chance"] == pytest.approx(0.5) and r["n_test"] == 90
    means = {(r["arm"], r["x"]): r["value"] for r in acc if r["dataset"] == "mean"}
    task = {(r["arm"], r["x"]): r["value"] for r in acc if r["dataset"] == "rendered-text"}
    assert means == task  # one task: its mean is itself
    for objective in ("contrastive", "bow", "caption"):
        run = out / "runs" / objective
        assert sorted(p.name for p in run.glob("checkpoint_step_*")) == [
            "checkpoint_step_00000002",
            "checkpoint_step_00000003",
        ]
        assert '"objective": "' + objective + '"' in (run / "config.json").read_text()
    facts = {(r["arm"], r["metric"]) for r in rows if r["metric"] in ("train_s", "final_loss")}
    assert facts == {(o, m) for o in ("contrastive", "bow", "caption") for m in ("train_s", "final_loss")}
    summary = (out / "summary.md").read_text()
    assert "## Training objectives (Figure 2)" in summary and "| caption | 0 | 24 |" in summary
    assert "12x in all" in summary and "Reading: Final mean zero-shot top-1: " in summary
    with Image.open(out / "objectives.png") as png:
        assert png.format == "PNG" and png.size[0] >= 400

    # a rerun reuses the finished runs and gives the same accuracies
    capsys.readouterr()
    assert cli.main(args) == 0
    assert capsys.readouterr().err.count("reusing the finished run") == 3
    again = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["dataset"], r["x"], r["value"]) for r in again if r["metric"] == "zeroshot_acc1") == (
        sorted((r["arm"], r["dataset"], r["x"], r["value"]) for r in acc)
    )

    query = "SELECT arm, x, value FROM results WHERE dataset = 'mean' AND metric = 'zeroshot_acc1' ORDER BY arm, x"
    assert cli.main(["sql", str(out), query]) == 0
    printed = capsys.readouterr().out
    assert printed.count("caption") == 2 and printed.count("bow") == 2
