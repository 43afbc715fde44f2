"""A retrieval set from WebDataset shards (KEY.jpg + KEY.txt): identical image files are one image with all their
captions, as in the paper's retrieval sets where one image has several captions."""

from __future__ import annotations

import hashlib

from eval.datasets import IMAGE_EXTS, EvalSet, _readable, tar_samples


def retrieval_from_shards(shard_urls: list[str], name: str = "demo-retrieval") -> EvalSet:
    """Every readable (image, caption) sample of the shards, grouped by sha256 of the image bytes; bad samples are
    counted in `skipped` (no_image, no_caption, empty_caption, unreadable_image)."""
    skipped: dict[str, int] = {}
    groups: dict[str, int] = {}
    keys: list[str] = []
    images: list[bytes] = []
    captions: list[list[str]] = []
    for url in shard_urls:
        for sample in tar_samples(url):
            ext = next((e for e in ("jpg", *IMAGE_EXTS) if e in sample), None)
            reason = _problem(sample, ext)
            if reason:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            caption = sample["txt"].decode("utf-8", "replace").strip()
            digest = hashlib.sha256(sample[ext]).hexdigest()
            if digest in groups:
                captions[groups[digest]].append(caption)
                continue
            groups[digest] = len(keys)
            keys.append(sample["__key__"])
            images.append(sample[ext])
            captions.append([caption])
    return EvalSet(
        name=name,
        split="test",
        keys=keys,
        images=images,
        labels=None,
        captions=captions,
        classnames=None,
        templates=None,
        skipped=skipped,
        source=",".join(shard_urls),
    )


def _problem(sample: dict, ext: str | None) -> str | None:
    if ext is None:
        return "no_image"
    if "txt" not in sample:
        return "no_caption"
    if not sample["txt"].decode("utf-8", "replace").strip():
        return "empty_caption"
    if not _readable(sample[ext]):
        return "unreadable_image"
    return None
