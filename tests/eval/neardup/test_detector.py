"""A detector trained briefly on real clip art finds planted transformed copies and leaves different drawings of
the same category alone at its calibrated threshold; save and load keep its embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from task_data import load_task

from eval.neardup.augment import augment
from eval.neardup.calibrate import calibrate, validation_pairs
from eval.neardup.detector import REFERENCE_VIEWS, NearDuplicateDetector, best_cosine, pair_similarity, sign
from eval.neardup.images import decode, encode_png
from eval.neardup.model import DetectorConfig
from eval.neardup.train import embed, load_detector, save_detector, train_detector
from wit_builder.errors import WitError

CLIPART, MISSING = load_task("clipart")

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
    """At the threshold calibrated on held-out pairs (precision 0.99, as `wit overlap` calibrates), exact and
    transformed copies of references are found, the embedding tier finding copies that pHash misses, and
    different drawings of the same categories are rarely flagged."""
    model, _ = trained
    train, test = CLIPART
    held, calib = test.images[:300], test.images[300:]
    pairs = validation_pairs(calib, test.labels[300:].tolist(), 200, 200, np.random.default_rng(1))
    a, b = embed(model, pairs.first).vectors, embed(model, pairs.second).vectors
    cal = calibrate((a * b).sum(1), pairs.labels, min_precision=0.99)
    print(
        f"calibration: threshold {cal.threshold:.4f} precision {cal.precision:.3f} recall {cal.recall:.3f} "
        f"auc {cal.auc:.3f}"
    )
    detector = NearDuplicateDetector(model, cal.threshold, train.images[:300])
    planted = detector.query(copies(train.images[:150], seed=2) + train.images[150:160])
    found = [m.tier is not None and m.index == i for i, m in enumerate(planted)]
    others = detector.query(held)
    flagged = [m.tier is not None for m in others]
    tiers = {t: sum(m.tier == t and m.index == i for i, m in enumerate(planted[:150])) for t in ("phash", "embedding")}
    print(f"planted recall {np.mean(found[:150]):.3f} tiers {tiers}; same-category flagged {np.mean(flagged):.3f}")
    assert all(m.tier == "exact" and m.index == 150 + i for i, m in enumerate(planted[150:]))
    # measured (seed 0, 200 steps; the tiny model's weights differ between CPUs, so do the figures): on one CPU auc
    # 0.968, calibration recall 0.315, planted 0.40 (50 by pHash, 10 by embedding), flagged 0.053; over three pair
    # samples the embedding tier found 5-24 copies and flagged stayed 0.05-0.08 (pHash matches of library repeats).
    # At precision 0.95 the threshold depends on a few negatives: it flagged 0.09-0.73 of these drawings.
    assert cal.auc >= 0.92 and cal.precision >= 0.99 and cal.recall >= 0.1
    assert np.mean(found[:150]) >= 0.3 and tiers["embedding"] >= 3
    assert np.mean(flagged) <= 0.12


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
    than the plain vectors at a threshold that flags as many held-out drawings, and on held-out pairs (max over the
    reference's views) they give a higher AUC and more copies at the precision-0.99 operating point."""
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
    # measured (seed 0, 200 steps): 0.573 single, 0.707 with views; on another CPU 0.587 and 0.660
    assert found["views"] >= found["single"] + 0.04

    for seed in (1, 2):  # the pair-calibrated operating point: views find more copies among the same pairs
        pairs = validation_pairs(test.images[300:], test.labels[300:].tolist(), 200, 200, np.random.default_rng(seed))
        second = sign(model, pairs.second)
        single = calibrate(pair_similarity(sign(model, pairs.first), second), pairs.labels, 0.99)
        cal = calibrate(pair_similarity(sign(model, pairs.first, REFERENCE_VIEWS), second), pairs.labels, 0.99)
        print(f"pairs {seed}: recall {single.recall:.3f} -> {cal.recall:.3f}, auc {single.auc:.3f} -> {cal.auc:.3f}")
        # measured: recall 0.315 -> 0.405 and 0.220 -> 0.285, auc 0.968 -> 0.979 and 0.958 -> 0.968
        assert cal.recall > single.recall and cal.auc > single.auc
