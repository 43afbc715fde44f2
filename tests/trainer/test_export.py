"""`wit export`: a run's newest checkpoint, written in OpenAI's layout and as an OpenCLIP checkpoint + config, loads
into OpenCLIP's own model (built offline with random weights) and gives our model's features; bad runs are one line."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from pipelines import cli
from trainer.models import CLIP


def _fake_run(tmp_path, name="tiny-vit", steps=(3, 7)):
    """A run folder as `wit train` leaves it: config.json and checkpoint_step_N/state.pt (newest = the largest N)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"model": name}, "plan": {}}))
    models = {}
    for step in steps:
        torch.manual_seed(step)
        model = CLIP(name)
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
