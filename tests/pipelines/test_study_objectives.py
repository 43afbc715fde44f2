"""`wit study objectives`: bad input is one clear line before any training; the three objectives trained on the same
tiny shards, each evaluated zero-shot at its kept checkpoints, give results.parquet rows against images seen,
objectives.png and the summary section, read back by `wit sql`, and the same rows when the arms train in parallel
(slow: a 4-CPU Ray cluster of its own)."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.tasks import build_tasks
from pipelines import cli


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("wit: error: ")
    return err[-1]


def test_an_unknown_objective_lists_the_known_ones(good_shards, tmp_path, capsys):
    args = ["study", "objectives", "--data", good_shards, "--objectives", "bow,mlm", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    assert error_line(capsys) == (
        "wit: error: --objectives 'bow,mlm': unknown objective mlm: choose from contrastive, bow, caption"
    )


def test_a_corpus_smaller_than_a_batch_says_how_many_samples_are_needed(good_shards, tmp_path, capsys):
    args = ["study", "objectives", "--data", good_shards, "--tasks", "rendered-text", "--out", str(tmp_path)]
    args += ["--batch-size", "32"]
    assert cli.main(args) == 2
    assert error_line(capsys) == (
        f"wit: error: --data {good_shards} holds 24 samples, but the objectives study needs at least 32 (one --batch-size "
        "32 batch per arm): build a bigger corpus or lower --batch-size"
    )
    assert not (tmp_path / "runs").exists()


def test_objectives_need_data_not_a_checkpoint(tmp_path, capsys):
    assert cli.main(["study", "objectives", "--checkpoint", "RUN", "--out", str(tmp_path)]) == 2
    assert "the objectives study trains its own models: give --data OUT" in error_line(capsys)


def test_parallel_arms_need_a_cpu_each_plus_one_for_ray_data(good_shards, tmp_path, ray_session, capsys):
    data_dir = tmp_path / "tasks"
    build_tasks(str(data_dir), ["rendered-text"], progress=False)
    args = ["study", "objectives", "--data", good_shards, "--data-dir", str(data_dir), "--out", str(tmp_path / "s")]
    assert cli.main(args + ["--batch-size", "8", "--parallel"]) == 2  # the session's cluster has 2 CPUs
    assert error_line(capsys) == (
        "wit: error: --parallel trains 3 arms at once: their workers need 3 CPUs and Ray Data at least 1 more, and "
        "this Ray cluster has 2: add nodes, or drop --parallel to train them one after another"
    )
    assert not (tmp_path / "s" / "runs").exists()


STUDY = """
import json, sys
from pipelines import ray_env
ray_env.apply()
import ray
ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300_000_000)
from pipelines import cli
shards, data_dir, out = sys.argv[1:4]
args = ["study", "objectives", "--data", shards, "--data-dir", data_dir, "--epochs", "1", "--batch-size", "8",
        "--points", "2"]
codes = [cli.main(args + ["--out", out + "/study"])]
print("RERUN", file=sys.stderr, flush=True)
codes.append(cli.main(args + ["--out", out + "/study"]))
print("PARALLEL", file=sys.stderr, flush=True)
codes.append(cli.main(args + ["--out", out + "/parallel", "--parallel"]))
print("RESULT", json.dumps(codes))
ray.shutdown()
"""


@pytest.mark.slow
def test_three_objectives_end_to_end_then_reused_then_in_parallel(good_shards, tmp_path, capsys, no_driver_ray):
    """The three objectives on 24 pairs (3 steps of 8, a checkpoint at step 2 and at the end), in a 4-CPU cluster of
    its own: rows, summary, plot and `wit sql`; a rerun reuses the runs and gives the same rows; `--parallel` trains
    the arms as concurrent Ray Train runs (each driven from a Ray task) and gives exactly the same loss curves and
    rows as one after another."""
    import json
    import os
    import subprocess

    from pipelines import ray_env

    data_dir = tmp_path / "tasks"
    build_tasks(str(data_dir), ["rendered-text"], progress=False)  # 90 test images, 2 classes: a cheap caption score
    env = {**os.environ, **ray_env.RAY_ENV, "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-c", STUDY, good_shards, str(data_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert json.loads(done.stdout.split("RESULT ", 1)[1].splitlines()[0]) == [0, 0, 0]
    first, rerun_and_parallel = done.stderr.split("RERUN", 1)
    rerun, parallel = rerun_and_parallel.split("PARALLEL", 1)
    assert "reusing" not in first and rerun.count("reusing the finished run") == 3
    assert "training 3 arms in parallel as Ray Train runs" in parallel and "reusing" not in parallel

    out = tmp_path / "study"
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["task"] for r in rows} == {"objectives"}
    acc = [r for r in rows if r["metric"] == "zeroshot_acc1"]
    balanced = [r for r in rows if r["metric"] == "zeroshot_balanced_acc1"]  # what the summary and plot read
    expected = [
        (o, d, x) for o in ("contrastive", "bow", "caption") for x in (16.0, 24.0) for d in ("rendered-text", "mean")
    ]
    assert sorted((r["arm"], r["dataset"], r["x"]) for r in acc) == sorted(expected)
    assert sorted((r["arm"], r["dataset"], r["x"]) for r in balanced) == sorted(expected)
    for r in acc + balanced:
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
        assert json.loads((run / "config.json").read_text())["config"]["objective"] == objective
    train_s = {r["arm"]: r["value"] for r in rows if r["metric"] == "train_s"}
    assert set(train_s) == {"contrastive", "bow", "caption"} and all(v > 0 for v in train_s.values())
    assert {r["arm"] for r in rows if r["metric"] == "final_loss"} == set(train_s)
    summary = (out / "summary.md").read_text()
    assert "## Training objectives (Figure 2)" in summary and "| caption | 0 | 24 |" in summary
    assert "12x in all" in summary and "Reading: Final mean balanced zero-shot top-1: " in summary
    with Image.open(out / "objectives.png") as png:
        assert png.format == "PNG" and png.size[0] >= 400

    def scores(kind):
        table = pq.read_table(tmp_path / kind / "results.parquet").to_pylist()
        return sorted(
            (r["arm"], r["dataset"], r["x"], r["metric"], r["value"]) for r in table if "zeroshot" in r["metric"]
        )

    assert len(scores("study")) == 3 * 2 * 2 * 2 and scores("parallel") == scores("study")
    for objective in ("contrastive", "bow", "caption"):
        curves = [
            [json.loads(line)["loss"] for line in (tmp_path / kind / "runs" / objective / "metrics.jsonl").open()]
            for kind in ("parallel", "study")
        ]
        assert curves[0] == curves[1] and len(curves[0]) == 3

    query = "SELECT arm, x, value FROM results WHERE dataset = 'mean' AND metric = 'zeroshot_acc1' ORDER BY arm, x"
    assert cli.main(["sql", str(out), query]) == 0
    printed = capsys.readouterr().out
    assert printed.count("caption") == 2 and printed.count("bow") == 2
