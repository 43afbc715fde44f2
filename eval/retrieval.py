"""Image-text retrieval: Recall@K in both directions over paired features, and the held-out check of a training run
that `wit demo` prints (the paper's retrieval evaluation on a corpus's own pairs; the full evaluation grows here)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from wit_builder.errors import WitError


def recall_at_k(image_features: torch.Tensor, text_features: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Row i of both sides is one pair. For each image, is its own text among the k most similar texts (and the
    other way round)? A tie with the right partner counts for it. Returns {"image_to_text_R@k": ..., ...}."""
    if image_features.shape[0] != text_features.shape[0] or image_features.shape[0] == 0:
        raise ValueError("need the same, non-zero number of images and texts, one pair per row")
    sim = F.normalize(image_features.float(), dim=-1) @ F.normalize(text_features.float(), dim=-1).T
    right = sim.diagonal()
    image_rank = (sim > right[:, None]).sum(dim=1)  # texts scoring above an image's own text
    text_rank = (sim > right[None, :]).sum(dim=0)  # images scoring above a text's own image
    out = {}
    for k in ks:
        out[f"image_to_text_R@{k}"] = (image_rank < k).float().mean().item()
        out[f"text_to_image_R@{k}"] = (text_rank < k).float().mean().item()
    return out


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


@torch.no_grad()
def embed_shards(model, data: str, batch_rows: int = 128) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Image and text features of every good sample of the shards `data` (a center crop, as for evaluation), with
    the number of samples skipped as corrupt."""
    from trainer.data import collate, iter_plain, resolve_shards

    size = model.config.vision.image_size
    images, texts, skipped = [], [], 0
    for rows in iter_plain(resolve_shards(data), size, batch_rows=batch_rows):
        good = rows["reason"] == ""
        skipped += int((~good).sum())
        batch = collate({k: v[good] for k, v in rows.items()}, size, seed=0, epoch=0, train=False)
        if len(batch["keys"]):
            images.append(model.encode_image(batch["images"]))
            texts.append(model.encode_text(batch["tokens"]))
    if not images:
        raise WitError(f"{data} holds no usable image-text pairs to evaluate on")
    return torch.cat(images), torch.cat(texts), skipped
