"""`wit export`: a run's newest checkpoint, written in OpenAI's layout and as an OpenCLIP checkpoint + config, loads
into OpenCLIP's own model (built offline with random weights) and gives our model's features; bad runs are one line."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from pipelines import cli
from trainer.export import load_run_model
from trainer.models import CLIP
from trainer.objectives import BowModel, CaptionModel, build_model


def _fake_run(tmp_path, name="tiny-vit", steps=(3, 7), objective=None):
    """A run folder as `wit train` leaves it: config.json and checkpoint_step_N/state.pt (newest = the largest N);
    without `objective` its config.json predates the field (a contrastive run)."""
    run = tmp_path / "run"
    run.mkdir()
    config = {"model": name} if objective is None else {"model": name, "objective": objective}
    (run / "config.json").write_text(json.dumps({"config": config, "plan": {}}))
    models = {}
    for step in steps:
        torch.manual_seed(step)
        model = build_model(name, objective or "contrastive")
        if objective in (None, "contrastive"):
            with torch.no_grad():
                model.logit_scale.fill_(2.0 + step / 10)
        folder = run / f"checkpoint_step_{step:08d}"
        folder.mkdir()
        torch.save({"model": model.state_dict(), "optimizer": {}, "step": step, "position": {}}, folder / "state.pt")
        models[step] = model.eval()
    return run, models[max(steps)]


def _inputs(model):
    g = torch.Generator().manual_seed(0)
    size = model.config.vision.image_size
    images = torch.randn(2, 3, size, size, generator=g)
    tokens = torch.zeros(2, model.config.text.context_length, dtype=torch.long)
    tokens[0, :5] = torch.tensor([49406, 320, 1929, 539, 49407])  # [SOT] a photo of [EOT]
    tokens[1, :3] = torch.tensor([49406, 7, 49407])
    return images, tokens


@pytest.mark.parametrize("fmt", ["openai", "open_clip"])
def test_export_loads_into_open_clip_with_our_features(tmp_path, capsys, fmt):
    run, ours = _fake_run(tmp_path)
    out = tmp_path / "export" / "model.pt"
    out.parent.mkdir()
    assert cli.main(["export", str(run), "--out", str(out), "--format", fmt]) == 0
    assert "at step 7" in capsys.readouterr().out  # the newest checkpoint
    config = ours.config.to_open_clip() if fmt == "openai" else json.loads(out.with_suffix(".json").read_text())
    (tmp_path / "wit-export-tiny.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "wit-export-tiny.json")
    theirs = open_clip.create_model("wit-export-tiny", pretrained=None)
    open_clip.load_checkpoint(theirs, str(out), strict=True)
    theirs.eval()
    images, tokens = _inputs(ours)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode_image(images), ours.encode_image(images), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(theirs.encode_text(tokens), ours.encode_text(tokens), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(theirs.logit_scale, ours.logit_scale)


def test_export_of_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    assert "not a `wit train` run folder" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "tiny-vit"}}))
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path / "m.pt")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(("objective", "kind"), [("bow", BowModel), ("caption", CaptionModel), (None, CLIP)])
def test_a_run_loads_as_its_objectives_model_at_any_kept_step(tmp_path, objective, kind):
    run, newest = _fake_run(tmp_path, objective=objective)
    model, step = load_run_model(str(run))
    assert isinstance(model, kind) and step == 7 and not model.training
    assert all(torch.equal(v, newest.state_dict()[k]) for k, v in model.state_dict().items())
    older, step = load_run_model(str(run), 3)
    torch.manual_seed(3)
    assert step == 3 and torch.equal(older.visual.conv1.weight, build_model("tiny-vit", "bow").visual.conv1.weight)
    with pytest.raises(Exception, match=r"has no checkpoint of step 5 \(it has 3, 7\)"):
        load_run_model(str(run), 5)


@pytest.mark.parametrize("objective", ["bow", "caption"])
def test_a_generative_run_does_not_export_to_the_clip_layouts(tmp_path, capsys, objective):
    run, _ = _fake_run(tmp_path, objective=objective)
    assert cli.main(["export", str(run), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"wit: error: {run} was trained with --objective {objective}: only contrastive (CLIP) runs export to the "
        "OpenAI/OpenCLIP layouts"
    )
    assert not (tmp_path / "m.pt").exists()
