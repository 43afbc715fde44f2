"""`wit study prompts|fewshot`: both studies into one folder give results.parquet (read by `wit sql` as results),
summary.md with each study's table and the paper's finding, and a PNG each; bad input is one clear line."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from PIL import Image

from eval.tasks import build_tasks
from pipelines import cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from clip_checkpoint import open_clip_checkpoint

    path = open_clip_checkpoint(tmp_path_factory.mktemp("ckpt"))[0]
    data_dir = tmp_path_factory.mktemp("tasks")
    build_tasks(str(data_dir), ["digits"], progress=False)
    return ["--checkpoint", path, "--model", "tiny-vit", "--data-dir", str(data_dir)]


def error_lines(capsys) -> list[str]:
    """The `wit: error` lines on stderr (progress lines aside), which must end it."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("wit: error")]
    assert errors and err[-1] == errors[-1]
    return errors


def test_both_studies_into_one_folder(setup, tmp_path, capsys):
    out = tmp_path / "study"
    assert cli.main(["study", "prompts", *setup, "--out", str(out)]) == 0
    assert cli.main(["study", "fewshot", *setup, "--out", str(out), "--shots", "1,2", "--seeds", "0,1"]) == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    prompts = [(r["dataset"], r["arm"]) for r in rows if r["task"] == "prompts"]
    assert prompts == [("digits", "name"), ("digits", "one"), ("digits", "ensemble")]
    probes = sorted((r["x"], r["seed"]) for r in rows if r["task"] == "fewshot" and r["arm"] == "probe")
    assert probes == [(1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    assert {r["arm"] for r in rows if r["task"] == "fewshot"} == {"zeroshot", "probe", "worth"}
    summary = (out / "summary.md").read_text()
    assert "| digits | " in summary and "| class name | one prompt | ensemble |" in summary
    assert "Figure 4" in summary and "almost 5 points" in summary
    assert "Figure 6" in summary and "4-shot linear probe" in summary and "| 1-shot | 2-shot |" in summary
    for name in ("prompts.png", "fewshot.png"):
        with Image.open(out / name) as png:
            assert png.format == "PNG" and png.size[0] >= 400

    # a rerun of one study replaces its rows and keeps the other's
    assert cli.main(["study", "fewshot", *setup, "--out", str(out), "--shots", "1", "--seeds", "3"]) == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert sorted((r["x"], r["seed"]) for r in rows if r["arm"] == "probe") == [(1.0, 3)]
    assert sum(r["task"] == "prompts" for r in rows) == 3

    capsys.readouterr()
    query = "SELECT task, arm, count(*) AS n FROM results GROUP BY task, arm ORDER BY task, arm"
    assert cli.main(["sql", str(out), query]) == 0
    printed = capsys.readouterr().out
    for arm in ("ensemble", "name", "one", "probe", "worth", "zeroshot"):
        assert arm in printed


def test_unknown_study_is_one_line(tmp_path, capsys):
    assert cli.main(["study", "robustness", "--checkpoint", "x", "--out", str(tmp_path)]) == 2
    assert error_lines(capsys) == [
        "wit: error: unknown study 'robustness': choose one of objectives, prompts, fewshot, scaling"
    ]


def test_no_checkpoint_and_no_data_is_one_line(setup, tmp_path, capsys):
    assert cli.main(["study", "prompts", "--data-dir", setup[-1], "--out", str(tmp_path)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("wit: error: give --checkpoint RUN") and "--data OUT" in line


def test_too_many_shots_is_one_line(setup, tmp_path, capsys):
    assert cli.main(["study", "fewshot", *setup, "--out", str(tmp_path), "--shots", "1,500"]) == 2
    (line,) = error_lines(capsys)
    assert "500-shot needs 500 training images in every class" in line and "give --shots up to" in line
    assert not (tmp_path / "results.parquet").exists()


def test_data_trains_a_tiny_vit_into_the_study_folder(setup, tmp_path, monkeypatch, capsys):
    import trainer.ray_train
    from wit_builder.errors import WitError

    seen = []

    def fake_train(cfg):
        seen.append(cfg)
        raise WitError("stopped after the config")

    monkeypatch.setattr(trainer.ray_train, "train", fake_train)
    out = tmp_path / "study"
    args = ["study", "prompts", "--data", "/builds/OUT", "--data-dir", setup[-1], "--out", str(out), "--epochs", "2"]
    assert cli.main(args) == 2
    assert error_lines(capsys)[-1] == "wit: error: stopped after the config"
    (cfg,) = seen
    assert (cfg.data, cfg.model, cfg.out, cfg.epochs) == ("/builds/OUT", "tiny-vit", f"{out}/run", 2)
