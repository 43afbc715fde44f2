"""Image-text retrieval: Recall@K in both directions, with one or several captions per image (the paper's retrieval
evaluation; CLIP_benchmark's metric names)."""

from __future__ import annotations

import numpy as np

from wit_builder.errors import WitError


def retrieval_metrics(
    image_features: np.ndarray, text_features: np.ndarray, text_image: np.ndarray, ks=(1, 5, 10)
) -> dict[str, float]:
    """Several captions per image: text i describes image `text_image[i]`. Text-to-image ("image_retrieval"): is a
    text's image among the k images most similar to it? Image-to-text ("text_retrieval"): is any of an image's
    captions among the k texts most similar to it? CLIP_benchmark's metric names; a tie counts for the right side."""
    text_image = np.asarray(text_image, dtype=np.int64)
    n_images, n_texts = len(image_features), len(text_features)
    if n_images == 0 or n_texts == 0 or len(text_image) != n_texts:
        raise WitError("retrieval needs images, texts, and the image of every text")
    if text_image.min() < 0 or text_image.max() >= n_images:
        raise WitError("a text points at an image that does not exist")
    sim = _normalised(image_features) @ _normalised(text_features).T  # [images, texts]
    own = sim[text_image, np.arange(n_texts)]  # each text against its own image
    image_rank = (sim > own[None, :]).sum(axis=0)  # per text: images scoring above its own
    best_own = np.full(n_images, -np.inf, dtype=sim.dtype)
    np.maximum.at(best_own, text_image, own)
    text_rank = (sim > best_own[:, None]).sum(axis=1)  # per image: texts scoring above its best caption
    has_text = np.isfinite(best_own)
    out = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = float((image_rank < k).mean())
        out[f"text_retrieval_recall@{k}"] = float((text_rank[has_text] < k).mean())
    return out


def _normalised(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
