"""Recall@K over paired features: exact ranks on a hand-made similarity, ties in the pair's favour, bad shapes."""

import pytest
import torch

from eval.retrieval import recall_at_k


def test_recall_counts_the_rank_of_each_pairs_partner():
    # unit vectors on a circle: image i is closest to text i for i = 0, 1; image 2's own text ranks third
    angle = torch.tensor([0.0, 1.0, 2.0])
    images = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    texts = images.clone()
    texts[2] = torch.tensor([1.0, 0.05])  # text 2 now sits next to image 0, far from image 2
    r = recall_at_k(images, texts, ks=(1, 2, 3))
    # image 2 scores text 1 (angle 1) above its own (angle ~0.05): rank 1, R@1 misses it, R@2 finds it
    assert r["image_to_text_R@1"] == pytest.approx(2 / 3) and r["image_to_text_R@2"] == 1.0
    # text 2 (angle 0.05) is closer to images 0 and 1 than to image 2: rank 2, found only at R@3
    sim = torch.nn.functional.normalize(images, dim=-1) @ torch.nn.functional.normalize(texts, dim=-1).T
    text_rank = (sim > sim.diagonal()[None, :]).sum(0)
    assert r["text_to_image_R@1"] == pytest.approx((text_rank < 1).float().mean().item())
    assert text_rank.tolist()[2] == 2 and r["text_to_image_R@3"] == 1.0


def test_perfect_and_tied_features():
    x = torch.eye(4)
    assert set(recall_at_k(x, x, ks=(1,)).values()) == {1.0}
    same = torch.ones(4, 3)  # every pair ties with every other: ties count for the partner
    assert set(recall_at_k(same, same, ks=(1,)).values()) == {1.0}


def test_shapes_must_pair_up():
    with pytest.raises(ValueError, match="one pair per row"):
        recall_at_k(torch.ones(3, 2), torch.ones(2, 2))


def test_several_captions_per_image_equal_a_plain_loop():
    import numpy as np

    from eval.retrieval import retrieval_metrics

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
