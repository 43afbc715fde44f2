"""`wit eval` end to end on a checkpoint OpenCLIP made: records in CLIP_benchmark's shape whose numbers equal the
library computed directly on the same features, per-example rows `wit sql` reads, user datasets in the three formats,
and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from eval.datasets import load_eval_set
from eval.embed import embed_images_local
from eval.linear_probe import linear_probe, standardize
from eval.model import load_eval_model
from eval.templates import ONE
from eval.zeroshot import classifier_weights, classify
from pipelines import cli

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from clip_checkpoint import open_clip_checkpoint

    return open_clip_checkpoint(tmp_path_factory.mktemp("ckpt"))[0]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """ImageFolder ROOT/SPLIT/CLASS/*.png: noisy solid colours, 12 train and 6 test images per class."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for name, rgb in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(rgb) + rng.normal(0, 40, (24 + i, 30, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def run_wit(*args) -> int:
    return cli.main([str(a) for a in args])


def test_zeroshot_and_probe_equal_the_library_on_the_same_features(checkpoint, image_folder, tmp_path, capsys):
    out = tmp_path / "res" / "results.json"
    code = run_wit(
        "eval", "--checkpoint", checkpoint, "--model", "tiny-vit",
        "--task", "zeroshot,linear-probe", "--dataset", image_folder, "--templates", "one",
        "--per-example", "--out", out,
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = json.loads(out.read_text())
    assert [r["task"] for r in records] == ["zeroshot_classification", "linear_probe"]
    assert {r["model"] for r in records} == {"tiny-vit"} and records[0]["pretrained"] == checkpoint

    model = load_eval_model(checkpoint, "tiny-vit")
    test, train = load_eval_set(str(image_folder), "test"), load_eval_set(str(image_folder), "train")
    assert test.classnames == ["blue", "green", "red"]
    x_test = embed_images_local(model.model, test.images).features
    x_train = embed_images_local(model.model, train.images).features
    zs = classify(x_test, test.labels, classifier_weights(model.model, model.tokenizer, test.classnames, list(ONE)))
    assert records[0]["metrics"]["acc1"] == pytest.approx(zs.metrics["acc1"])
    assert records[0]["metrics"]["mean_per_class_recall"] == pytest.approx(zs.metrics["mean_per_class_recall"])
    probe = linear_probe(*standardize(x_train, x_test)[:1], train.labels, standardize(x_train, x_test)[1], test.labels)
    assert records[1]["metrics"]["lp_acc1"] == pytest.approx(probe.top1)
    assert records[1]["metrics"]["C"] == pytest.approx(probe.C)

    import duckdb

    con = duckdb.connect()
    folder = out.parent
    rows = con.execute(
        f"SELECT task, count(*), sum(correct::INT) FROM '{folder}/predictions.parquet' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("linear-probe", 18, int((probe.predictions == test.labels).sum())),
        ("zeroshot", 18, int((zs.predictions == test.labels).sum())),
    ]
    capsys.readouterr()
    assert (
        run_wit("sql", folder, "SELECT count(*) AS n FROM results WHERE task = 'linear_probe'", "--format", "json") == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": len(records[1]["metrics"])}]
    assert (folder / "results.md").read_text().count("| ") >= 3


def test_user_table_and_classnames_file(checkpoint, image_folder, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = sorted((image_folder / "test").glob("*/*.png"))
    labels = [p.parent.name for p in paths]
    pq.write_table(pa.table({"path": [str(p) for p in paths], "label": labels}), tmp_path / "set.parquet")
    (tmp_path / "names.txt").write_text("blue\ngreen\nred\n")
    out = tmp_path / "r.json"
    argv = ["eval", "--checkpoint", checkpoint, "--model", "tiny-vit", "--dataset", tmp_path / "set.parquet"]
    (tmp_path / "templates.txt").write_text("a {c} square.\nsomething {c}.\n")
    extra = ["--classnames", tmp_path / "names.txt", "--templates", tmp_path / "templates.txt"]
    assert run_wit(*argv, *extra, "--out", out) == 0
    record = json.loads(out.read_text())
    assert "skipped" not in record
    model = load_eval_model(checkpoint, "tiny-vit")
    data = load_eval_set(str(image_folder), "test")
    x = embed_images_local(model.model, data.images).features
    templates = ["a {c} square.", "something {c}."]
    weights = classifier_weights(model.model, model.tokenizer, ["blue", "green", "red"], templates)
    # the table lists the same images in another order (sorted paths vs the folder walk): compare the accuracy
    assert record["metrics"]["acc1"] == pytest.approx(classify(x, data.labels, weights).metrics["acc1"])


def test_bad_input_is_one_line(checkpoint, image_folder, tmp_path, capsys):
    def error(*args) -> str:
        assert run_wit("eval", *args) == 2
        lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("wit: error:")]
        assert len(lines) == 1
        return lines[0]

    base = ["--checkpoint", checkpoint, "--model", "tiny-vit", "--dataset", image_folder, "--out", tmp_path / "o.json"]
    assert "unknown task 'zero'" in error(*base, "--task", "zero")
    assert "does not fit model 'tiny-rn'" in error(
        "--checkpoint", checkpoint, "--model", "tiny-rn", "--dataset", image_folder
    )
    assert "say which architecture" in error("--checkpoint", checkpoint, "--dataset", image_folder)
    assert "no template set 'fancy'" in error(*base, "--templates", "fancy")
    assert "retrieval needs captions" in error(*base, "--task", "retrieval")
    assert "--shots" in error(*base, "--task", "few-shot", "--shots", "1,x")
    assert "does not exist" in error("--checkpoint", tmp_path / "nope.pt", "--model", "tiny-vit")
