"""A detector trained briefly on real clip art finds planted transformed copies and leaves different drawings of
the same category alone at its calibrated threshold; save and load keep its embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from eval.neardup.augment import augment
from eval.neardup.calibrate import calibrate, validation_pairs
from eval.neardup.detector import REFERENCE_VIEWS, NearDuplicateDetector, best_cosine, pair_similarity, sign
from eval.neardup.images import decode, encode_png
from eval.neardup.model import DetectorConfig
from eval.neardup.train import embed, load_detector, save_detector, train_detector
from wit_builder.errors import WitError

try:
    from eval.tasks.build import TASKS

    CLIPART = TASKS["clipart"]()
except WitError as err:  # Debian data not installed
    CLIPART, MISSING = None, str(err)
else:
    MISSING = ""

pytestmark = pytest.mark.skipif(CLIPART is None, reason=MISSING)
CFG = DetectorConfig(image_size=32, width=16, batch=64, steps=200, seed=0)


@pytest.fixture(scope="module")
def trained():
    train, _ = CLIPART
    model, history = train_detector(train.images[:300], CFG)
    return model, history


def copies(images: list[bytes], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for data in images:
        image = decode(data)[0].convert("RGBA")
        image.thumbnail((256, 256))
        out.append(encode_png(augment(image, rng)))
    return out


def test_training_lowers_the_contrastive_loss(trained):
    _, history = trained
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]


def test_detector_finds_planted_copies_not_same_category_drawings(trained):
    model, _ = trained
    train, test = CLIPART
    held, calib = test.images[:300], test.images[300:]
    pairs = validation_pairs(calib, test.labels[300:].tolist(), 200, 200, np.random.default_rng(1))
    a, b = embed(model, pairs.first).vectors, embed(model, pairs.second).vectors
    cal = calibrate((a * b).sum(1), pairs.labels, min_precision=0.95)
    print(
        f"calibration: threshold {cal.threshold:.4f} precision {cal.precision:.3f} recall {cal.recall:.3f} "
        f"auc {cal.auc:.3f}"
    )
    detector = NearDuplicateDetector(model, cal.threshold, train.images[:300])
    planted = detector.query(copies(train.images[:150], seed=2) + train.images[150:160])
    found = [m.tier is not None and m.index == i for i, m in enumerate(planted)]
    others = detector.query(held)
    flagged = [m.tier is not None for m in others]
    tiers = {t: sum(m.tier == t for m in planted) for t in ("exact", "phash", "embedding")}
    print(f"planted recall {np.mean(found[:150]):.3f} tiers {tiers}; same-category flagged {np.mean(flagged):.3f}")
    assert all(m.tier == "exact" and m.index == 150 + i for i, m in enumerate(planted[150:]))
    # measured (seed 0, 200 steps): auc 0.964, calibration recall 0.805, planted recall 0.76 (72 by embedding),
    # flagged 0.24 (0.15 before the same-picture pairs left the calibration negatives and lowered the threshold)
    assert cal.auc >= 0.92 and cal.precision >= 0.95 and cal.recall >= 0.6
    assert np.mean(found[:150]) >= 0.6 and tiers["embedding"] >= 50
    assert np.mean(flagged) <= 0.25


def test_save_load_round_trip(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "neardup.pt"
    save_detector(model, CFG, path, threshold=0.9)
    loaded, cfg, threshold = load_detector(path)
    assert cfg == CFG and threshold == 0.9
    images = CLIPART[1].images[:20] + [b"broken"]
    before, after = embed(model, images), embed(loaded, images)
    assert np.array_equal(before.vectors, after.vectors) and before.ok.tolist() == [True] * 20 + [False]
    assert sum(after.skipped.values()) == 1
    with pytest.raises(WitError):
        load_detector(tmp_path / "missing.pt")


def test_reference_views_find_more_copies_at_the_same_false_flag_rate(trained):
    """Signing the references in extra views (mirror, grayscale, zoomed crops, margin) finds more planted copies
    than the plain vectors at a threshold that flags as many held-out drawings; at thresholds calibrated on pairs
    (max over views of one reference) the views flag more held-out drawings than the single view does."""
    model, _ = trained
    train, test = CLIPART
    planted, held = sign(model, copies(train.images[:150], seed=2)), sign(model, test.images[:300])
    refs = sign(model, train.images[:300], REFERENCE_VIEWS)
    found = {}
    for name, views in (("single", None), ("views", refs.views)):
        best = best_cosine(planted.vectors, refs.vectors, views)
        threshold = np.quantile(best_cosine(held.vectors, refs.vectors, views).max(axis=1), 0.9)  # flags 10 %
        found[name] = np.mean((best.argmax(axis=1) == np.arange(150)) & (best.max(axis=1) >= threshold))
    print(f"found at a 10 % flag rate: {found}")
    # measured (seed 0, 200 steps): 0.573 single, 0.707 with views
    assert found["views"] >= found["single"] + 0.08

    pairs = validation_pairs(test.images[300:], test.labels[300:].tolist(), 200, 200, np.random.default_rng(1))
    second = sign(model, pairs.second)
    single = calibrate(pair_similarity(sign(model, pairs.first), second), pairs.labels, 0.95)
    cal = calibrate(pair_similarity(sign(model, pairs.first, REFERENCE_VIEWS), second), pairs.labels, 0.95)
    detector = NearDuplicateDetector(model, cal.threshold, train.images[:300], views=REFERENCE_VIEWS)
    hits = detector.query(copies(train.images[:150], seed=2))
    recall = np.mean([m.tier is not None and m.index == i for i, m in enumerate(hits)])
    flagged = np.mean([m.tier is not None for m in detector.query(test.images[:300])])
    print(
        f"pair calibration recall {single.recall:.3f} -> {cal.recall:.3f}; planted {recall:.3f} flagged {flagged:.3f}"
    )
    # measured: calibration recall 0.810 -> 0.895, planted 0.827 (0.760 single), flagged 0.397 (0.240 single)
    assert cal.recall >= single.recall + 0.05 and cal.auc >= single.auc
    assert recall >= 0.78 and flagged <= 0.45
