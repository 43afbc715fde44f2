"""Zero-shot classification as in the paper: each class name goes through every prompt template, the L2-normalised
text embeddings of one class are averaged and renormalised (the prompt ensemble), and an image's logits are its
normalised features against those class vectors, scaled by 100. Metrics as CLIP_benchmark reports them.

A model trained with `--objective bow` or `caption` has no text tower to embed prompts: each image scores each class's
prompts with the model's own head (the prompt's bag-of-words score, or its log-likelihood given the image; see
trainer/objectives.py), averaged over the templates, and the highest score is the prediction (the paper's Figure 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval.embed import embed_texts
from eval.linear_probe import accuracy, mean_per_class_recall
from eval.templates import fill
from wit_builder.errors import WitError

LOGIT_SCALE = 100.0


def classifier_weights(model, tokenizer, classnames: list[str], templates: list[str]) -> np.ndarray:
    """float32 [d, K]: per class the renormalised mean of its prompts' normalised text embeddings."""
    if not classnames:
        raise WitError("zero-shot needs at least one class name")
    if not templates:
        raise WitError("zero-shot needs at least one prompt template")
    columns = []
    for name in classnames:
        prompts = [fill(t, name) for t in templates]
        mean = embed_texts(model, tokenizer, prompts).mean(axis=0)
        columns.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return np.stack(columns, axis=1).astype(np.float32)


def zero_shot_logits(image_features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[n, K] logits: 100 x cosine similarity of each (normalised) image to each class vector."""
    return LOGIT_SCALE * (image_features.astype(np.float32) @ weights)


@dataclass
class ZeroShotResult:
    """Metrics in CLIP_benchmark's names, and per image the prediction and its top-5 classes."""

    metrics: dict[str, float]
    predictions: np.ndarray
    top5: np.ndarray
    logits: np.ndarray


def objective_of(model) -> str:
    """'contrastive' for a CLIP, else the objective a generative model was trained with (bow, caption)."""
    return getattr(model, "objective", "contrastive")


def generative_logits(
    model, tokenizer, image_features: np.ndarray, classnames: list[str], templates: list[str]
) -> np.ndarray:
    """[n, K] for a bow or caption model: per image and class the mean over templates of the prompt's score."""
    import torch

    from trainer.objectives import prompt_scores

    if not classnames or not templates:
        raise WitError("zero-shot needs at least one class name and one prompt template")
    features = torch.from_numpy(np.ascontiguousarray(image_features, dtype=np.float32))
    total = np.zeros((len(image_features), len(classnames)), dtype=np.float64)
    for template in templates:
        tokens = tokenizer([fill(template, name) for name in classnames], model.context_length)
        total += prompt_scores(model, features, tokens).double().numpy()
    return (total / len(templates)).astype(np.float32)


def classify(image_features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> ZeroShotResult:
    """Zero-shot predictions and metrics (acc5 only with five classes or more, as CLIP_benchmark)."""
    return classify_logits(zero_shot_logits(image_features, weights), labels)


def classify_logits(logits: np.ndarray, labels: np.ndarray) -> ZeroShotResult:
    """Predictions and metrics from per-class scores [n, K] (the highest score wins)."""
    n_classes = logits.shape[1]
    predictions = logits.argmax(axis=1)
    order = np.argsort(-logits, axis=1, kind="stable")[:, : min(5, n_classes)]
    metrics = {
        "acc1": accuracy(logits, labels, 1),
        "acc5": accuracy(logits, labels, 5) if n_classes >= 5 else float("nan"),
        "mean_per_class_recall": mean_per_class_recall(predictions, labels, n_classes),
    }
    return ZeroShotResult(metrics, predictions, order, logits)
