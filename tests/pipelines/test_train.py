"""`wit train` / pipelines/train.py: flags, the config, one clear line per bad input, the `metrics` view of `wit sql`,
and (slow) a real `wit train` on a tiny build folder that ends with its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from test_data import make_shards  # noqa: E402 - the shard maker of tests/trainer


def wit(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def one_error_line(done) -> str:
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.strip().splitlines() if x.startswith("wit: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_registered_after_build_and_help_reads_well():
    names = list(cli.COMMANDS)
    assert names.index("train") == names.index("build") + 1
    done = wit("train", "--help")
    assert done.returncode == 0
    for flag in (
        "--data",
        "--model",
        "--out",
        "--workers",
        "--gpus-per-worker",
        "--epochs",
        "--batch-size",
        "--lr",
        "--warmup",
        "--checkpoint-every",
        "--resume",
        "--seed",
    ):
        assert flag in done.stdout
    assert "32,768" in done.stdout  # the paper's global batch as the default


def test_flags_make_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args(
        [
            "--data",
            "D",
            "--model",
            "tiny-rn",
            "--out",
            "R",
            "--workers",
            "2",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--lr",
            "1e-3",
            "--warmup",
            "5",
            "--checkpoint-every",
            "7",
            "--resume",
            "--seed",
            "9",
            "--gpus-per-worker",
            "1",
            "--grad-checkpointing",
            "--compile",
            "--objective",
            "caption",
            "--keep-checkpoints",
            "0",
        ]
    )
    cfg = train.config_from_args(args)
    assert (
        cfg.data,
        cfg.model,
        cfg.out,
        cfg.workers,
        cfg.epochs,
        cfg.batch_size,
        cfg.lr,
        cfg.warmup,
        cfg.checkpoint_every,
        cfg.resume,
        cfg.seed,
        cfg.gpus_per_worker,
    ) == ("D", "tiny-rn", "R", 2, 3, 64, 1e-3, 5, 7, True, 9, 1.0)
    assert cfg.local_batch == 32 and cfg.grad_checkpointing and cfg.compile
    assert (cfg.objective, cfg.keep_checkpoints) == ("caption", 0)
    defaults = train.config_from_args(parser.parse_args(["--data", "D", "--model", "RN50", "--out", "R"]))
    assert (defaults.batch_size, defaults.epochs, defaults.warmup, defaults.lr) == (32768, 32, 2000, None)
    assert not defaults.grad_checkpointing and not defaults.compile
    assert (defaults.objective, defaults.keep_checkpoints) == ("contrastive", 2)
    with pytest.raises(SystemExit):  # argparse names the choices
        parser.parse_args(["--data", "D", "--model", "RN50", "--out", "R", "--objective", "mlm"])


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n_shards=2, per_shard=10)
    return folder


def test_bad_input_is_one_line_that_says_what_to_fix(shards, tmp_path):
    line = one_error_line(wit("train", "--data", shards, "--model", "nope", "--out", tmp_path / "r"))
    assert "unknown model 'nope'" in line and "tiny-vit" in line
    line = one_error_line(wit("train", "--data", tmp_path / "missing", "--model", "tiny-vit", "--out", tmp_path / "r"))
    assert "does not exist" in line and "brace pattern" in line
    line = one_error_line(
        wit("train", "--data", shards, "--model", "tiny-vit", "--out", tmp_path / "r", "--resume", "--batch-size", "8")
    )
    assert "holds no run" in line and "drop --resume" in line
    line = one_error_line(wit("train", "--data", shards, "--model", "tiny-vit", "--out", tmp_path / "r"))
    assert "--batch-size 32768 exceeds the 16 samples" in line


def test_wit_sql_sees_the_metrics(tmp_path):
    rows = [
        {
            "step": s,
            "epoch": 0,
            "samples_seen": 8 * s,
            "loss": 2.0 / s,
            "lr": 1e-4,
            "logit_scale": 14.3,
            "samples_per_s": 30.0,
            "data_wait_fraction": 0.1,
        }
        for s in range(1, 6)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = wit(
        "sql", tmp_path, "SELECT count(*) AS n, min(loss) AS best, max(step) AS last FROM metrics", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 5, "best": 0.4, "last": 5}]
    (tmp_path / "metrics.jsonl").write_text("")  # a run before its first step: an empty view, not an error
    done = wit("sql", tmp_path, "SELECT count(*) AS n FROM metrics", "--format", "json")
    assert json.loads(done.stdout) == [{"n": 0}]


@pytest.mark.slow
def test_a_real_wit_train_on_a_tiny_build_folder_ends_with_its_summary(tmp_path, no_driver_ray):
    build = tmp_path / "build"
    make_shards(build / "shards", n_shards=2, per_shard=12, build=True)
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        build,
        "--model",
        "tiny-vit",
        "--out",
        run,
        "--workers",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--warmup",
        "2",
        "--checkpoint-every",
        "3",
        "--shuffle-buffer",
        "0",
        "--grad-checkpointing",  # recomputed activations: the same run, less memory
    ]
    done = wit(*args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "trained 5 steps (20 samples)" in out and "final loss" in out and "data wait" in out
    assert "skipped samples  bad_image 1, empty_caption 1, no_caption 1, no_image 1" in out
    done = wit("sql", run, "SELECT count(*) AS n FROM metrics", "--format", "json")
    assert json.loads(done.stdout) == [{"n": 5}]
    again = wit(*args)
    assert "already holds a run: pass --resume" in one_error_line(again)


def test_resuming_with_another_objective_is_refused_and_older_runs_mean_contrastive(shards, tmp_path):
    """A config.json written before --objective existed holds no `objective`: it resumes as contrastive, and a
    resume that changes the objective is one line naming both."""
    import json

    from trainer.ray_train import prepare_run
    from trainer.run_config import TrainConfig
    from wit_builder.errors import WitError

    run = tmp_path / "r"
    run.mkdir()
    cfg = TrainConfig(data=str(shards), model="tiny-vit", out=str(run), batch_size=8, resume=True)
    saved = {k: v for k, v in cfg.to_dict().items() if k not in ("objective", "keep_checkpoints")}
    (run / "config.json").write_text(json.dumps({"config": saved, "plan": {}}))
    assert prepare_run(cfg)[2] is None  # same settings, no checkpoint yet: starts from the beginning
    with pytest.raises(WitError, match="--objective was 'contrastive', now 'bow'"):
        prepare_run(cfg.replace(objective="bow"))
    with pytest.raises(
        WitError, match=r"unknown objective 'mlm': choose one of contrastive, bow, caption \(--objective\)"
    ):
        prepare_run(cfg.replace(objective="mlm", resume=False, out=str(tmp_path / "new")))
