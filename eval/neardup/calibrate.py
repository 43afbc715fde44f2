"""Held-out validation pairs (transformed copies versus hard negatives of the same category) and the threshold
calibration on their scores: the precision/recall curve, ROC AUC and the operating point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from eval.neardup.augment import augment_named
from eval.neardup.hashes import sha256_hex
from eval.neardup.images import decode, encode_png, to_rgb
from wit_builder.errors import WitError

SIGNATURE_SIDE = 16  # the pixel test compares grayscale thumbnails of this side
SAME_PICTURE_CORR = 0.95  # ... and calls two images one picture at or above this Pearson correlation


@dataclass
class PairSet:
    """Labelled image pairs: `first[i]` and `second[i]` are encoded images; labels True for a near-duplicate."""

    first: list[bytes]
    second: list[bytes]
    labels: np.ndarray
    left_out: int = 0  # same-group pairs of different bytes that the pixel test calls one picture (never negatives)
    # per pair: the names of the transforms that made the copy, () for a negative
    transforms: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Curve:
    """Per distinct score, descending: predicting 'duplicate' when score >= threshold gives these rates."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    fpr: np.ndarray


@dataclass
class Calibration:
    """The operating point (lowest threshold whose precision reaches the target), ROC AUC, and the whole curve."""

    threshold: float
    precision: float
    recall: float
    auc: float
    curve: Curve


def gray_signature(image: Image.Image, side: int = SIGNATURE_SIDE) -> np.ndarray:
    """The image flattened onto white, grayscale, squashed to side x side, centred and scaled to unit length (zeros
    for a flat image): dot products of two signatures are the Pearson correlation of the thumbnails."""
    gray = to_rgb(image).convert("L").resize((side, side), Image.BILINEAR, reducing_gap=2.0)
    v = np.asarray(gray, dtype=np.float64).reshape(-1)
    v = v - v.mean()
    norm = np.linalg.norm(v)
    return (v / norm if norm > 1e-9 else v).astype(np.float32)


def same_picture_pairs(signatures: np.ndarray, digests: list[str], bound: float) -> int:
    """How many unordered pairs of different bytes have signature correlation >= bound."""
    corr = signatures @ signatures.T
    same = np.triu(corr >= bound, k=1)
    rows, cols = np.nonzero(same)
    return int(sum(digests[r] != digests[c] for r, c in zip(rows, cols, strict=True)))


def _distinct_pairs(digests: list[str]) -> int:
    """Unordered pairs of members whose bytes differ."""
    n = len(digests)
    counts = np.unique(np.array(digests), return_counts=True)[1] if n else np.zeros(0)
    return n * (n - 1) // 2 - int((counts * (counts - 1) // 2).sum())


def validation_pairs(
    images: list[bytes],
    groups: Sequence,
    n_pos: int,
    n_neg: int,
    rng: np.random.Generator,
    max_side: int = 256,
    n_ops: tuple[int, int] = (1, 3),
    same_picture: float | None = SAME_PICTURE_CORR,
) -> PairSet:
    """n_pos (image, augmented copy) pairs and n_neg (image, another image of the same group) pairs, shuffled. Pass
    only images the detector was not trained on. Copies are made from the image shrunk to `max_side` and saved as PNG
    (JPEG when the jpeg transform ran), as a re-hosted thumbnail would be. Byte-identical negatives are left out, and
    so (unless `same_picture` is None) are pairs whose 16x16 grayscale thumbnails correlate at >= `same_picture`:
    the corpus's own copies of one drawing; PairSet.left_out counts those pairs in the whole negative pool."""
    if len(images) != len(groups):
        raise WitError(f"validation_pairs got {len(images)} images but {len(groups)} groups: pass one group per image")
    signatures: dict[int, np.ndarray] = {}
    decodable = []
    for i, data in enumerate(images):
        image = decode(data)[0]
        if image is not None:
            decodable.append(i)
            if same_picture is not None:
                signatures[i] = gray_signature(image)
    if not decodable:
        raise WitError("validation_pairs got no decodable image")
    digests = {i: sha256_hex(images[i]) for i in decodable}
    bound = np.inf if same_picture is None else float(same_picture)
    by_group: dict = {}
    for i in decodable:
        by_group.setdefault(groups[i], []).append(i)
    pairable, left_out = [], 0
    for g, members in by_group.items():
        member_digests = [digests[i] for i in members]
        same = 0
        if signatures:
            same = same_picture_pairs(np.stack([signatures[i] for i in members]), member_digests, bound)
        left_out += same
        if _distinct_pairs(member_digests) > same:
            pairable.append(g)
    if n_neg and not pairable:
        raise WitError("validation_pairs found no group with two different pictures: hard negatives need them")
    first, second, labels, transforms = [], [], [], []
    for i in rng.choice(decodable, size=n_pos, replace=n_pos > len(decodable)):
        image = decode(images[int(i)])[0].convert("RGBA")
        image.thumbnail((max_side, max_side), Image.BILINEAR)
        copy, applied = augment_named(image, rng, n_ops)
        first.append(images[int(i)])
        second.append(encode_png(copy))
        labels.append(True)
        transforms.append(applied)
    while len(labels) < n_pos + n_neg:
        members = by_group[pairable[int(rng.integers(len(pairable)))]]
        a, b = (int(x) for x in rng.choice(members, size=2, replace=False))
        if digests[a] == digests[b] or (signatures and float(signatures[a] @ signatures[b]) >= bound):
            continue
        first.append(images[a])
        second.append(images[b])
        labels.append(False)
        transforms.append(())
    order = rng.permutation(len(labels))
    first, second, transforms = [first[i] for i in order], [second[i] for i in order], [transforms[i] for i in order]
    return PairSet(first, second, np.array(labels, dtype=bool)[order], left_out, transforms)


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> Curve:
    """Precision, recall and false-positive rate at every distinct score (tied scores move together)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).astype(bool).reshape(-1)
    if scores.shape != labels.shape:
        raise WitError(f"calibration got {scores.size} scores but {labels.size} labels: they must pair up")
    if not np.isfinite(scores).all():
        raise WitError("calibration scores contain NaN or infinity: drop the pairs whose images could not be scored")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == labels.size:
        raise WitError(f"calibration needs both positive and negative pairs (got {n_pos} of {labels.size} positive)")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return Curve(s[last_of_tie], tp / (tp + fp), tp / n_pos, fp / (labels.size - n_pos))


def roc_auc(curve: Curve) -> float:
    """Area under the ROC curve by the trapezoid through (0, 0) and every distinct threshold (ties count half)."""
    return float(np.trapezoid(np.r_[0.0, curve.recall], np.r_[0.0, curve.fpr]))


def calibrate(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.99) -> Calibration:
    """The lowest threshold whose precision >= min_precision, with its precision and recall, and the ROC AUC. When
    no threshold reaches it the threshold is +inf (flag nothing): precision 1.0 by convention, recall 0.0."""
    curve = pr_curve(scores, labels)
    good = np.nonzero(curve.precision >= min_precision)[0]
    auc = roc_auc(curve)
    if good.size == 0:
        return Calibration(float("inf"), 1.0, 0.0, auc, curve)
    k = int(good[-1])
    return Calibration(float(curve.thresholds[k]), float(curve.precision[k]), float(curve.recall[k]), auc, curve)


def recall_at_precision(curve: Curve, min_precision: float) -> float:
    """Best recall among thresholds whose precision >= min_precision (0.0 if none)."""
    good = curve.precision >= min_precision
    return float(curve.recall[good].max()) if good.any() else 0.0


def precision_at_recall(curve: Curve, min_recall: float) -> float:
    """Best precision among thresholds whose recall >= min_recall."""
    good = curve.recall >= min_recall
    return float(curve.precision[good].max()) if good.any() else 0.0


def recall_by_transform(
    scores: np.ndarray, labels: np.ndarray, transforms: Sequence[tuple[str, ...]], threshold: float
) -> dict[str, tuple[int, int]]:
    """Per transform name, (positive pairs whose copy used it, how many of them score >= threshold): which kinds of
    copy the detector misses at its operating point. Sorted by recall, lowest first."""
    if not len(scores) == len(labels) == len(transforms):
        raise WitError(f"recall_by_transform got {len(scores)} scores, {len(labels)} labels, {len(transforms)} lists")
    counts: dict[str, list[int]] = {}
    for score, label, names in zip(scores, labels, transforms, strict=True):
        if label:
            for name in names:
                seen = counts.setdefault(name, [0, 0])
                seen[0] += 1
                seen[1] += int(score >= threshold)
    ranked = sorted(counts.items(), key=lambda kv: (kv[1][1] / kv[1][0], kv[0]))
    return {name: (n, found) for name, (n, found) in ranked}
