"""The prompts and fewshot studies on the real digits task with an OpenCLIP-made random-init tiny-vit: their rows are
the Evaluator's zero-shot and eval.linear_probe.few_shot on the same features; the worth-k-shots interpolation is
exact on constructed curves, crossing or not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.linear_probe import few_shot, standardize
from eval.model import load_eval_model
from eval.run import EvalOptions, Evaluator
from eval.studies import results_table
from eval.studies.fewshot import check_shots, fewshot_rows, fit_shots, format_worth, worth_shots
from eval.studies.prompts import prompt_rows
from eval.tasks import build_tasks
from eval.templates import IMAGENET, NAME, ONE
from wit_builder.errors import WitError


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    from clip_checkpoint import open_clip_checkpoint

    path = open_clip_checkpoint(tmp_path_factory.mktemp("ckpt"))[0]
    data_dir = tmp_path_factory.mktemp("tasks")
    build_tasks(str(data_dir), ["digits"], progress=False)
    return Evaluator(load_eval_model(path, "tiny-vit"), EvalOptions(data_dir=str(data_dir)))


def test_prompt_rows_are_the_evaluators_zero_shot(evaluator):
    rows = prompt_rows(evaluator, ["digits"])
    n_test = len(evaluator.features("digits", "test").x)
    assert [(r["dataset"], r["task"], r["arm"], r["x"]) for r in rows] == [
        ("digits", "prompts", "name", 1.0),
        ("digits", "prompts", "one", 1.0),
        ("digits", "prompts", "ensemble", 80.0),
    ]
    for r, templates in zip(rows, (NAME, ONE, IMAGENET)):
        assert r["value"] == evaluator.zeroshot("digits", templates=list(templates)).record["metrics"]["acc1"]
        assert r["metric"] == "acc1" and r["n_test"] == n_test and r["chance"] == pytest.approx(0.1)
    # the arms really differ: the class-name classifier is not the ensemble's
    name_w = evaluator.class_weights(evaluator.eval_set("digits", "test"), list(NAME))
    ensemble_w = evaluator.class_weights(evaluator.eval_set("digits", "test"), list(IMAGENET))
    assert not np.allclose(name_w, ensemble_w)
    assert results_table(rows).num_rows == 3


def test_fewshot_rows_are_the_library_on_the_same_features(evaluator):
    rows = fewshot_rows(evaluator, ["digits"], shots=(1, 2, 4), seeds=(0, 1))
    train, test = evaluator.features("digits", "train"), evaluator.features("digits", "test")
    train_x, test_x = standardize(train.x, test.x)
    direct = few_shot(train_x, train.labels, test_x, test.labels, shots=(1, 2, 4), seeds=(0, 1))
    probe = {(r["x"], r["seed"]): r["value"] for r in rows if r["arm"] == "probe"}
    assert probe == {(float(d.k), s): pytest.approx(v) for d in direct for s, v in zip(d.seeds, d.top1)}
    zero_shot = [r["value"] for r in rows if r["arm"] == "zeroshot"]
    assert zero_shot == [evaluator.zeroshot("digits").record["metrics"]["acc1"]]
    worth = [r["value"] for r in rows if r["arm"] == "worth"]
    assert worth == [worth_shots([d.k for d in direct], [d.mean_top1 for d in direct], zero_shot[0])]


def test_worth_shots_interpolates_in_log2_shots():
    shots, probe = [1, 2, 4, 8, 16], [0.1, 0.2, 0.3, 0.4, 0.5]
    assert worth_shots(shots, probe, 0.25) == pytest.approx(2**1.5)
    assert worth_shots(shots, probe, 0.3) == pytest.approx(4.0)
    assert worth_shots(shots, probe, 0.1) == 1.0
    assert worth_shots(shots, probe, 0.475) == pytest.approx(2**3.75)
    assert worth_shots([1, 2, 4, 8], [0.1, 0.3, 0.2, 0.5], 0.25) == pytest.approx(2**0.75)  # the first crossing
    assert worth_shots([16, 1, 4], [0.5, 0.1, 0.3], 0.2) == pytest.approx(2)  # unsorted input


def test_worth_shots_without_a_crossing():
    shots, probe = [1, 2, 4, 8, 16], [0.1, 0.2, 0.3, 0.4, 0.5]
    below = worth_shots(shots, probe, 0.05)
    above = worth_shots(shots, probe, 0.6)
    assert below == 0.0 and format_worth(below, shots) == "< 1"
    assert math.isinf(above) and format_worth(above, shots) == "> 16"
    assert format_worth(worth_shots(shots, probe, 0.25), shots) == "2.8"


def test_shots_beyond_the_smallest_class_are_one_clear_error(evaluator):
    labels = np.array([0] * 5 + [1] * 3 + [2] * 9)
    check_shots(labels, (1, 3), "toy")
    with pytest.raises(
        WitError, match=r"^5-shot needs 5 training images in every class, .* toy has 3: give --shots up"
    ):
        check_shots(labels, (1, 5), "toy")
    with pytest.raises(WitError, match="smallest class of digits has"):
        fewshot_rows(evaluator, ["digits"], shots=(1, 10_000), seeds=(0,))


def test_the_default_shots_are_cut_to_what_each_task_can_give(evaluator):
    labels = np.array([0] * 5 + [1] * 3 + [2] * 9)
    assert fit_shots(labels, (1, 2, 4, 8, 16)) == [1, 2]
    rows = fewshot_rows(evaluator, ["digits"], shots=(1, 10_000), seeds=(0,), strict=False)
    assert sorted({r["x"] for r in rows if r["arm"] == "probe"}) == [1]
