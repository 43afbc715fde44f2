"""Transforms, hashes and calibration on small hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sklearn.metrics import roc_auc_score

from eval.neardup.augment import TRANSFORMS, augment
from eval.neardup.calibrate import calibrate, pr_curve, precision_at_recall, recall_at_precision
from eval.neardup.hashes import hamming, phash, phash_matches, sha256_hex
from eval.neardup.images import decode, encode_png
from wit_builder.errors import WitError


def drawing(seed: int = 0) -> Image.Image:
    """An asymmetric, colourful RGBA drawing on a transparent background with a gradient, like clip art."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (120, 90), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 90), rng.integers(0, 60)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        draw.ellipse((x, y, x + rng.integers(10, 40), y + rng.integers(10, 40)), fill=colour)
    for x in range(0, 30):
        draw.line((x, 70, x, 89), fill=(8 * x, 255 - 8 * x, 100, 255))
    return image


def pixels(image: Image.Image) -> tuple:
    return image.size, image.mode, image.tobytes()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_each_transform_changes_the_image_and_is_seeded(name):
    image = drawing()
    out = TRANSFORMS[name](image, np.random.default_rng(1))
    assert pixels(out) != pixels(image)
    assert pixels(TRANSFORMS[name](image, np.random.default_rng(1))) == pixels(out)
    assert pixels(image) == pixels(drawing())  # the input is not modified


def test_augment_composes_deterministically():
    image = drawing()
    runs = [pixels(augment(image, np.random.default_rng(seed))) for seed in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_phash_equal_for_identical_far_for_unrelated():
    a, b = drawing(0), drawing(7)
    assert phash(a) == phash(a.copy()) and 0 <= phash(a) < 2**64
    assert hamming(phash(a), phash(b)) >= 16
    assert hamming(phash(a), phash(a.resize((240, 180)))) <= 4
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_phash_matches_is_the_brute_force_pairs():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64) * 2 + 1
    query = index[[3, 7]] ^ np.array([0b1011, 0], dtype=np.uint64)  # 3 bits off, and exact
    qi, ri, d = phash_matches(query, index, max_distance=3, chunk=1)
    expected = [(q, r, hamming(int(query[q]), int(index[r]))) for q in range(2) for r in range(50)]
    assert list(zip(qi, ri, d, strict=True)) == [e for e in expected if e[2] <= 3]
    assert (0, 3, 3) in list(zip(qi, ri, d, strict=True)) and (1, 7, 0) in list(zip(qi, ri, d, strict=True))


def test_calibrate_matches_a_hand_computation():
    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    labels = np.array([1, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
    # thresholds 0.9: 1/1, 0.8 (tie): 2/3, 0.7: 3/4, 0.6: 4/5, 0.5: 4/6, 0.4: 5/7, 0.3: 5/8; 5 positives
    cal = calibrate(scores, labels, min_precision=0.75)
    assert (cal.threshold, cal.precision, cal.recall) == (0.6, 4 / 5, 4 / 5)
    assert calibrate(scores, labels, min_precision=0.99).threshold == 0.9
    assert calibrate(scores, labels, min_precision=0.99).recall == 1 / 5
    assert cal.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert recall_at_precision(cal.curve, 0.7) == 1.0 and precision_at_recall(cal.curve, 0.8) == 0.8
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 20, 400) / 20, rng.random(400) < 0.4  # many ties
    assert calibrate(s, y).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_calibrate_degenerate_inputs():
    none_reach = calibrate(np.array([0.9, 0.5]), np.array([False, True]), 0.99)
    assert none_reach.threshold == float("inf") and none_reach.recall == 0.0 and none_reach.auc == 0.0
    tied = calibrate(np.ones(4), np.array([1, 1, 0, 1], dtype=bool), 0.5)
    assert (tied.threshold, tied.precision, tied.recall, tied.auc) == (1.0, 0.75, 1.0, 0.5)
    for scores, labels in [([0.1, 0.2], [1, 1]), ([0.1, 0.2], [0, 0]), ([], []), ([np.nan, 1], [0, 1]), ([1], [0, 1])]:
        with pytest.raises(WitError):
            pr_curve(np.array(scores), np.array(labels))


def test_decode_refuses_without_crashing():
    assert decode(b"not an image")[0] is None
    assert decode(encode_png(drawing()))[0].size == (120, 90)
