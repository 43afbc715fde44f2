"""Recall@K with one or several captions per image: exact ranks on a hand-made similarity, ties in the right side's
favour, a plain-loop reference on random features, and bad input."""

import numpy as np
import pytest

from eval.retrieval import retrieval_metrics
from wit_builder.errors import WitError


def test_recall_counts_the_rank_of_each_pairs_partner():
    # unit vectors on a circle: image i is closest to text i for i = 0, 1; image 2's own text ranks third
    angle = np.array([0.0, 1.0, 2.0])
    images = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    texts = images.copy()
    texts[2] = [1.0, 0.05]  # text 2 now sits next to image 0, far from image 2
    r = retrieval_metrics(images, texts, np.arange(3), ks=(1, 2, 3))
    # image 2 scores text 1 (angle 1) above its own (angle ~0.05): rank 1, R@1 misses it, R@2 finds it
    assert r["text_retrieval_recall@1"] == pytest.approx(2 / 3) and r["text_retrieval_recall@2"] == 1.0
    # text 2 (angle 0.05) is closer to images 0 and 1 than to image 2: rank 2, found only at R@3
    assert r["image_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert r["image_retrieval_recall@2"] == pytest.approx(2 / 3) and r["image_retrieval_recall@3"] == 1.0


def test_perfect_and_tied_features():
    x = np.eye(4)
    assert set(retrieval_metrics(x, x, np.arange(4), ks=(1,)).values()) == {1.0}
    same = np.ones((4, 3))  # every pair ties with every other: ties count for the right side
    assert set(retrieval_metrics(same, same, np.arange(4), ks=(1,)).values()) == {1.0}


def test_bad_input_is_a_clear_error():
    with pytest.raises(WitError, match="image of every text"):
        retrieval_metrics(np.ones((3, 2)), np.ones((2, 2)), np.arange(3))
    with pytest.raises(WitError, match="does not exist"):
        retrieval_metrics(np.ones((3, 2)), np.ones((2, 2)), np.array([0, 3]))


def test_several_captions_per_image_equal_a_plain_loop():
    rng = np.random.default_rng(3)
    images, texts = rng.normal(size=(9, 8)), rng.normal(size=(20, 8))
    text_image = np.array([i % 9 for i in range(20)])  # images 0..1 have 3 captions, the others 2
    ours = retrieval_metrics(images, texts, text_image, ks=(1, 3, 5))
    ni = images / np.linalg.norm(images, axis=1, keepdims=True)
    nt = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    sim = ni @ nt.T
    for k in (1, 3, 5):
        hits_t2i = [text_image[t] in np.argsort(-sim[:, t])[:k] for t in range(20)]
        hits_i2t = [bool(set(np.argsort(-sim[i])[:k]) & set(np.flatnonzero(text_image == i))) for i in range(9)]
        assert ours[f"image_retrieval_recall@{k}"] == pytest.approx(np.mean(hits_t2i))
        assert ours[f"text_retrieval_recall@{k}"] == pytest.approx(np.mean(hits_i2t))
    assert ours["text_retrieval_recall@1"] < 1 and ours["image_retrieval_recall@5"] > 0  # neither trivial
