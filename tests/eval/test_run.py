"""The evaluator on the real shift tasks (clip-art, stamps, emoji of one class list) with an OpenCLIP-made checkpoint:
few-shot and robustness records equal the library called directly on the same features; Ray Data batch inference
gives the in-process features, row for row, and counts the same skips."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from eval.embed import embed_images_local, embed_images_ray
from eval.linear_probe import few_shot, standardize
from eval.model import load_eval_model
from eval.robustness import robustness
from eval.run import EvalOptions, Evaluator
from eval.tasks import SHIFT_TASKS, build_tasks


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    from clip_checkpoint import open_clip_checkpoint

    path = open_clip_checkpoint(tmp_path_factory.mktemp("ckpt"))[0]
    data_dir = tmp_path_factory.mktemp("tasks")
    build_tasks(str(data_dir), list(SHIFT_TASKS), progress=False)
    plots = tmp_path_factory.mktemp("plots")
    options = EvalOptions(data_dir=str(data_dir), shots=(1, 2, 4), seeds=(0, 1), plot_dir=str(plots))
    return Evaluator(load_eval_model(path, "tiny-vit"), options)


def test_few_shot_record_equals_the_library(evaluator):
    record = evaluator.run("few-shot", "shift-stamps").record
    train, test = evaluator.features("shift-stamps", "train"), evaluator.features("shift-stamps", "test")
    train_x, test_x = standardize(train.x, test.x)
    direct = few_shot(train_x, train.labels, test_x, test.labels, shots=(1, 2, 4), seeds=(0, 1))
    assert record["task"] == "few_shot_linear_probe"
    assert record["metrics"]["zeroshot_acc1"] == evaluator.zeroshot("shift-stamps").record["metrics"]["acc1"]
    for r in direct:
        assert record["metrics"][f"{r.k}shot_acc1"] == pytest.approx(r.mean_top1)
        assert record["metrics"][f"{r.k}shot_acc1_std"] == pytest.approx(r.std_top1)


def test_robustness_over_the_shift_family(evaluator):
    result = evaluator.run("robustness", "shift")
    assert result.record["dataset"] == ",".join(SHIFT_TASKS) and result.record["task"] == "distribution_shift"
    reference = evaluator.features(SHIFT_TASKS[0], "train").x
    sources, zero_shot = {}, {}
    for name in SHIFT_TASKS:
        train, test = evaluator.features(name, "train"), evaluator.features(name, "test")
        _, train_x, test_x = standardize(reference, train.x, test.x)
        sources[name] = (train_x, train.labels, test_x, test.labels)
        zero_shot[name] = evaluator.zeroshot(name).record["metrics"]["acc1"]
    direct = robustness(sources, zero_shot, SHIFT_TASKS[0], shots=(1, 2, 4)).rows()
    assert [r["target"] for r in result.extra["rows"]] == list(SHIFT_TASKS[1:])
    for row in direct:
        metrics = result.record["metrics"]
        assert metrics[f"{row['target']}:effective_robustness"] == pytest.approx(row["effective_robustness"])
        assert metrics[f"{row['target']}:probe_acc1"] == pytest.approx(row["probe_ood"])
    with Image.open(result.extra["plot"]) as plot:
        assert plot.format == "PNG" and plot.size[0] >= 400


def test_ray_batch_inference_equals_in_process(evaluator, ray_session):
    images = evaluator.eval_set("shift-emoji", "test").images[:40]
    bad = [b"\x89PNG broken", io.BytesIO()]
    Image.new("L", (9000, 9000)).save(bad[1], format="PNG")
    images = images[:10] + [bad[0]] + images[10:] + [bad[1].getvalue()]
    model = evaluator.model.model
    local = embed_images_local(model, images, batch_size=8)
    remote = embed_images_ray(model, images, batch_size=8, actors=2)
    assert remote.ok.tolist() == local.ok.tolist() and local.ok.sum() == 40
    assert dict(remote.skipped) == dict(local.skipped) == {"bad image": 1, "image too large": 1}
    np.testing.assert_allclose(remote.features, local.features, atol=1e-5)
