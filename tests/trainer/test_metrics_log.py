"""RUN/metrics.jsonl and its TensorBoard twin: every numeric field a scalar at its step; a resume drops both past
the checkpoint."""

from __future__ import annotations

import json
import struct

from tensorboardX.proto import event_pb2

from trainer.ray_train import MetricsLog


def read_scalars(folder) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} from the TFRecord event files under `folder` (later events win, as TensorBoard shows)."""
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_metrics_reach_jsonl_and_tensorboard(tmp_path):
    log = MetricsLog(str(tmp_path), keep_until_step=0)
    for step in (1, 2, 3):
        log.write({"step": step, "epoch": 0, "loss": 5.0 - step, "lr": 1e-4 * step, "note": "x", "ok": True})
    log.flush()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    scalars = read_scalars(tmp_path / "tensorboard")
    assert scalars["loss"] == {1: 4.0, 2: 3.0, 3: 2.0} and set(scalars) == {"epoch", "loss", "lr"}

    resumed = MetricsLog(str(tmp_path), keep_until_step=2)  # the checkpoint was at step 2
    resumed.write({"step": 3, "epoch": 0, "loss": 2.5, "lr": 3e-4})
    resumed.flush()
    assert [json.loads(x)["loss"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [4.0, 3.0, 2.5]
    assert read_scalars(tmp_path / "tensorboard")["loss"] == {1: 4.0, 2: 3.0, 3: 2.5}
