"""Ray Train end to end on real shards, 2 CPU workers (gloo) in the session's in-process Ray: metrics.jsonl,
checkpoints that load with weights_only, the summary, resume mid-epoch with the same loss curve, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_data import BAD, make_shards

from trainer import ray_train
from trainer.run_config import TrainConfig
from wit_builder.errors import WitError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    make_shards(folder, n_shards=3, per_shard=12)  # 36 rows, 4 corrupt (all in shard 0)
    return folder


def config(shards, out, **kw) -> TrainConfig:
    values = dict(
        data=str(shards),
        model="tiny-vit",
        out=str(out),
        workers=2,
        cpus_per_worker=0.5,
        epochs=2,
        batch_size=8,
        warmup=2,
        checkpoint_every=2,
        shuffle_buffer=8,
        seed=3,
    )
    values.update(kw)
    return TrainConfig(**values)


def metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def full_run(shards, tmp_path_factory, ray_session):
    out = tmp_path_factory.mktemp("runs") / "full"
    # a rare stall of Ray Data's split (seen once in CI: 30 min, no progress) fails the workers after 2 min and the
    # group restarts from its last checkpoint, which resumes the same curve (the killed-worker test checks that)
    summary = ray_train.train(config(shards, out, max_failures=1, data_stall_timeout=120))
    return out, summary


def test_two_worker_run_writes_metrics_checkpoints_and_summary(full_run):
    out, summary = full_run
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, summary["steps"] + 1)) and summary["steps"] >= 4
    assert set(rows[0]) == set(ray_train.METRIC_FIELDS)
    assert all(0 <= r["data_wait_fraction"] <= 1 and r["samples_per_s"] > 0 for r in rows)
    assert rows[-1]["samples_seen"] == 8 * summary["steps"] and {r["epoch"] for r in rows} == {0, 1}
    assert rows[0]["lr"] == pytest.approx(5e-4 / 2)  # warm-up step 1 of 2
    assert summary["skipped"] == {reason: 2 for reason in BAD.values()}  # 2 epochs, each corrupt row once each
    # per epoch: 36 rows = trained + 4 corrupt + tail
    assert summary["samples"] + 8 + summary["tail"] == 72
    found = ray_train.checkpoint_dirs(str(out))
    assert [step for step, _ in found][-1] == summary["steps"] and len(found) <= 2
    state = torch.load(f"{found[-1][1]}/state.pt", weights_only=True)
    assert state["step"] == summary["steps"] and len(state["position"]) == 2
    assert {"model", "optimizer", "scheduler", "rng"} <= set(state)
    assert json.loads((out / "config.json").read_text())["config"]["batch_size"] == 8
    assert "final loss" in ray_train.format_summary(summary)


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_and_resumed_repeats_the_uninterrupted_loss_curve(full_run, shards, tmp_path):
    out, summary = full_run
    expected = [(r["step"], r["loss"], r["lr"]) for r in metrics(out)]
    run = tmp_path / "stopped"
    first = ray_train.train(config(shards, run, max_steps=3))  # checkpoints at 2 and 3: mid epoch 0
    assert first["steps"] == 3
    rest = ray_train.train(config(shards, run, resume=True))
    assert rest["steps"] == summary["steps"] and rest["steps_this_run"] == summary["steps"] - 3
    got = [(r["step"], r["loss"], r["lr"]) for r in metrics(run)]
    assert [g[0] for g in got] == [e[0] for e in expected]
    for (_, loss, lr), (_, want_loss, want_lr) in zip(got, expected):
        assert loss == pytest.approx(want_loss, abs=1e-6) and lr == pytest.approx(want_lr, rel=1e-9)
    assert rest["skipped"] == summary["skipped"] and rest["tail"] == summary["tail"]


@pytest.mark.slow
def test_a_killed_worker_restarts_from_the_last_checkpoint_with_the_same_curve(full_run, shards, tmp_path, monkeypatch):
    out, summary = full_run
    expected = [(r["step"], r["loss"]) for r in metrics(out)]
    monkeypatch.setenv("WIT_TRAIN_FAIL_AT_STEP", "3")  # worker 1 exits at step 3, after the checkpoint at step 2
    run = tmp_path / "killed"
    got = ray_train.train(config(shards, run, max_failures=1))
    assert (run / ".failed_once").exists() and got["steps"] == summary["steps"]
    assert got["steps_this_run"] == summary["steps"] - 2  # the restarted group went on from step 2
    losses = [(r["step"], r["loss"]) for r in metrics(run)]
    assert [s for s, _ in losses] == [s for s, _ in expected]
    assert all(a == pytest.approx(b, abs=1e-6) for (_, a), (_, b) in zip(losses, expected))


def test_bad_inputs_give_one_clear_line(shards, tmp_path, full_run):
    out, _ = full_run
    with pytest.raises(WitError, match="unknown model 'ViT-Q/99'"):
        ray_train.prepare_run(config(shards, tmp_path / "a", model="ViT-Q/99"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WitError, match="holds no .tar shards"):
        ray_train.prepare_run(config(tmp_path / "empty", tmp_path / "a"))
    text_only = tmp_path / "text"
    text_only.mkdir()
    import tarfile

    (text_only / "k.txt").write_text("a caption")
    with tarfile.open(text_only / "00000.tar", "w") as tar:
        tar.add(text_only / "k.txt", arcname="k.txt")
    with pytest.raises(WitError, match="holds no images"):
        ray_train.prepare_run(config(text_only, tmp_path / "a"))
    with pytest.raises(WitError, match="exceeds the 32 samples"):
        ray_train.prepare_run(config(shards, tmp_path / "a", batch_size=64))
    with pytest.raises(WitError, match="multiple of --workers"):
        ray_train.prepare_run(config(shards, tmp_path / "a", batch_size=9))
    with pytest.raises(WitError, match="already holds a run: pass --resume"):
        ray_train.prepare_run(config(shards, out))
    with pytest.raises(WitError, match="holds no run"):
        ray_train.prepare_run(config(shards, tmp_path / "new", resume=True))
    with pytest.raises(WitError, match="--batch-size was 8, now 16"):
        ray_train.prepare_run(config(shards, out, batch_size=16, resume=True))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    _, newest = ray_train.checkpoint_dirs(str(copy))[-1]
    state = open(f"{newest}/state.pt", "rb").read()
    open(f"{newest}/state.pt", "wb").write(state[: len(state) // 2])
    with pytest.raises(WitError, match="truncated or not a wit checkpoint.*delete"):
        ray_train.prepare_run(config(shards, copy, resume=True))
    (copy / newest.rsplit("/", 1)[-1] / "state.pt").unlink()
    with pytest.raises(WitError, match="has no state.pt"):
        ray_train.prepare_run(config(shards, copy, resume=True))


@pytest.mark.slow
def test_shards_and_run_folder_on_s3(shards, s3_env, ray_session):  # noqa: F811 - session fixture
    from wit_builder import storage

    data = f"s3://{s3_env.bucket}/train/shards"
    for f in sorted(shards.iterdir()):
        storage.write_bytes(f"{data}/{f.name}", f.read_bytes())
    from test_data import rows_of

    from trainer import data as tdata

    plain = rows_of(tdata.iter_plain(tdata.resolve_shards(data), image_size=16))  # the plain reader reads S3 too
    assert len(plain) == 36 and sum(1 for r in plain if r["reason"]) == 4
    out = f"s3://{s3_env.bucket}/train/run"
    summary = ray_train.train(config(data, out, workers=1, batch_size=4, epochs=1, max_steps=3))
    assert summary["steps"] == 3
    lines = storage.read_bytes(f"{out}/metrics.jsonl").decode().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    [(step, newest)] = ray_train.checkpoint_dirs(out)[-1:]
    assert step == 3 and ray_train.load_state(newest)["step"] == 3
    resumed = ray_train.train(config(data, out, workers=1, batch_size=4, epochs=1, max_steps=4, resume=True))
    assert resumed["steps"] == 4 and resumed["steps_this_run"] == 1


def test_worker_reservations_must_leave_a_cpu_for_decoding(shards, tmp_path):
    ray_train.check_resources(config(shards, tmp_path), {"CPU": 2})  # 2 x 0.5 leaves 1
    with pytest.raises(WitError, match="lower --cpus-per-worker"):
        ray_train.check_resources(config(shards, tmp_path, cpus_per_worker=1), {"CPU": 2})
    with pytest.raises(WitError, match="needs 2 GPUs; the Ray cluster has 0"):
        ray_train.check_resources(config(shards, tmp_path, gpus_per_worker=1), {"CPU": 16})


def test_shards_with_no_samples_say_so(tmp_path):
    import tarfile

    folder = tmp_path / "s"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        (tmp_path / "k.jpg").write_bytes(b"x")
        tar.add(tmp_path / "k.jpg", arcname="k.jpg")
    (folder / "sizes.json").write_text('{"00000.tar": 0}')
    with pytest.raises(WitError, match="holds no samples"):
        ray_train.prepare_run(config(folder, tmp_path / "r"))
