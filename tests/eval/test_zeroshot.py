"""Zero-shot classification: metrics equal a plain numpy computation on the same embeddings, and a checkpoint that
OpenCLIP made (random weights, saved to disk) gives through `wit`'s evaluation the predictions OpenCLIP itself gives
on the same images and templates (its own preprocess, tokenizer and zero-shot classifier code)."""

from __future__ import annotations

import io

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from eval.embed import embed_images_local, preprocess
from eval.model import load_eval_model
from eval.templates import IMAGENET, fill
from eval.zeroshot import classifier_weights, classify
from wit_builder.errors import WitError

CLASSES = ["cat", "dog", "car", "tree", "boat", "house", "star"]
TEMPLATES = ["a photo of a {c}.", "a drawing of the {c}.", "{c}"]


def _images(n: int, seed: int = 0) -> list[bytes]:
    """JPEG and PNG images of several sizes and modes (landscape, portrait, grey, palette-free RGBA dropped)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        im = Image.fromarray(pixels)
        buf = io.BytesIO()
        if i % 3 == 2:
            im.convert("L").save(buf, format="PNG")
        else:
            im.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def test_metrics_equal_numpy_reference():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(50, 16)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    weights = rng.normal(size=(16, 7)).astype(np.float32)
    weights /= np.linalg.norm(weights, axis=0, keepdims=True)
    labels = rng.integers(0, 7, 50)
    result = classify(feats, labels, weights)
    logits = 100.0 * feats @ weights
    ranks = np.argsort(-logits, axis=1)
    assert result.metrics["acc1"] == pytest.approx(np.mean(ranks[:, 0] == labels))
    assert result.metrics["acc5"] == pytest.approx(np.mean([labels[i] in ranks[i, :5] for i in range(50)]))
    per_class = [np.mean(ranks[labels == c, 0] == c) for c in range(7) if (labels == c).any()]
    assert result.metrics["mean_per_class_recall"] == pytest.approx(np.mean(per_class))
    assert np.array_equal(result.predictions, ranks[:, 0])
    assert np.array_equal(result.top5, ranks[:, :5])


def test_template_sets():
    assert len(IMAGENET) == 80 and len(set(IMAGENET)) == 80
    assert fill("a {} of", "x") == "a x of" and fill("a {c}.", "cat") == "a cat."
    with pytest.raises(WitError, match="placeholder"):
        fill("a photo", "cat")


@pytest.fixture(scope="module")
def open_clip_checkpoint(tmp_path_factory):
    from clip_checkpoint import open_clip_checkpoint

    return open_clip_checkpoint(tmp_path_factory.mktemp("ockpt"))


def test_open_clip_checkpoint_gives_open_clips_predictions(open_clip_checkpoint):
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    path, theirs, their_preprocess = open_clip_checkpoint
    images = _images(24)
    ours = load_eval_model(path, model="tiny-vit")
    # OpenCLIP's own path: its eval transform, tokenizer and zero-shot classifier
    with torch.no_grad():
        pixel = torch.stack([their_preprocess(Image.open(io.BytesIO(b))) for b in images])
        their_feats = torch.nn.functional.normalize(theirs.encode_image(pixel), dim=-1)
        their_weights = build_zero_shot_classifier(
            theirs,
            tokenizer=open_clip.get_tokenizer("ViT-B-32"),
            classnames=CLASSES,
            templates=[t.replace("{c}", "{}") for t in TEMPLATES],
            num_classes_per_batch=3,
            device="cpu",
            use_tqdm=False,
        )
        their_logits = (100.0 * their_feats @ their_weights).numpy()
    embedded = embed_images_local(ours.model, images, batch_size=5)
    assert embedded.ok.all() and not embedded.skipped
    weights = classifier_weights(ours.model, ours.tokenizer, CLASSES, TEMPLATES)
    result = classify(embedded.features, np.zeros(len(images), dtype=np.int64), weights)
    np.testing.assert_allclose(
        pixel[0].numpy(), preprocess(images[0], ours.model.config.vision.image_size).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(result.logits, their_logits, atol=2e-3)
    assert np.array_equal(result.predictions, their_logits.argmax(axis=1))


def test_bad_images_are_counted_not_fatal(open_clip_checkpoint):
    ours = load_eval_model(open_clip_checkpoint[0], model="tiny-vit")
    huge = io.BytesIO()
    Image.new("L", (9000, 9000)).save(huge, format="PNG")
    images = _images(3) + [b"not an image", huge.getvalue()]
    embedded = embed_images_local(ours.model, images, batch_size=2)
    assert embedded.ok.tolist() == [True, True, True, False, False]
    assert embedded.features.shape == (3, ours.model.config.embed_dim)
    assert dict(embedded.skipped) == {"bad image": 1, "image too large": 1}


@pytest.mark.parametrize("objective", ["bow", "caption"])
def test_a_generative_run_is_scored_by_its_prompts_likelihood(tmp_path, objective):
    """`wit eval --task zeroshot` on a bow/caption run: each image's prediction is the class whose prompts score
    highest on average over the templates, computed here prompt by prompt with the model's own scorer; retrieval,
    which needs text embeddings, is refused in one line."""
    import json

    from eval.run import EvalOptions, Evaluator
    from eval.tasks import build_tasks
    from trainer.objectives import build_model, prompt_scores
    from trainer.tokenizer import load_tokenizer

    torch.manual_seed(0)
    model = build_model("tiny-vit", objective).eval()
    run = tmp_path / "run" / "checkpoint_step_00000004"
    run.mkdir(parents=True)
    config = {"model": "tiny-vit", "objective": objective}
    (tmp_path / "run" / "config.json").write_text(json.dumps({"config": config, "plan": {}}))
    torch.save({"model": model.state_dict(), "optimizer": {}, "step": 4, "position": {}}, run / "state.pt")
    data_dir = tmp_path / "tasks"
    build_tasks(str(data_dir), ["rendered-text"], progress=False)
    evaluator = Evaluator(load_eval_model(str(tmp_path / "run")), EvalOptions(data_dir=str(data_dir), per_example=True))
    assert evaluator.model.step == 4 and evaluator.model.model.objective == objective
    result = evaluator.zeroshot("rendered-text")
    feats = evaluator.features("rendered-text", "test")
    classes, templates = feats.data.classnames, evaluator.templates_for(feats.data)
    tokenizer = load_tokenizer(None, 77)
    x = torch.from_numpy(feats.x)
    expected = np.zeros((len(feats.x), len(classes)))
    for k, name in enumerate(classes):
        for t in templates:
            expected[:, k] += prompt_scores(model, x, tokenizer([fill(t, name)]))[:, 0].numpy() / len(templates)
    predicted = expected.argmax(axis=1)
    assert result.predictions.column("prediction").to_pylist() == [classes[i] for i in predicted]
    assert result.record["metrics"]["acc1"] == pytest.approx(float((predicted == feats.labels).mean()))
    with pytest.raises(WitError, match=f"trained with --objective {objective}: retrieval needs a contrastive"):
        evaluator.retrieval("rendered-text")
