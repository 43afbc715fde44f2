"""Shared pieces of the offline tasks: the seeded hash split, image encoding, readable class names, the demo-web note."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from eval.datasets import EvalSet

SEED = 0
TRAIN_PERCENT = 70
WEB_NOTE = (
    "images also served by the embedded demo web, so possibly in a training corpus built from it: `wit overlap` "
    "measures it"
)


@dataclass(frozen=True)
class Item:
    """One labelled image before the split: a unique key, its class name, and a thunk that encodes the image."""

    key: str
    classname: str
    image: Callable[[], bytes | None]


def key_hash(key: str, salt: str = "") -> int:
    """A stable 64-bit number for a key (identical on every run and machine)."""
    return int.from_bytes(hashlib.sha256(f"{SEED}:{salt}:{key}".encode()).digest()[:8], "big")


def train_keys(items: list[Item]) -> set[str]:
    """The 70/30 split, stratified: in each class, the 70% of keys with the lowest hash train (at least one image
    on each side when a class has two), so a small class still reaches both splits; identical on every run."""
    chosen: set[str] = set()
    for name in {i.classname for i in items}:
        ranked = sorted((key_hash(i.key, "split"), i.key) for i in items if i.classname == name)
        n = len(ranked)
        n_train = n if n < 2 else min(n - 1, max(1, round(n * TRAIN_PERCENT / 100)))
        chosen.update(k for _, k in ranked[:n_train])
    return chosen


def cap_per_class(items: Iterable[Item], cap: int | None) -> list[Item]:
    """At most `cap` items per class, chosen by key hash (deterministic, spread over the whole class)."""
    items = list(items)
    if cap is None:
        return items
    keep: set[str] = set()
    for name in {i.classname for i in items}:
        ranked = sorted((key_hash(i.key, "cap"), i.key) for i in items if i.classname == name)
        keep.update(k for _, k in ranked[:cap])
    return [i for i in items if i.key in keep]


def readable(name: str) -> str:
    """'animal-mammal' / 'signs_and_symbols' / 'Food & Drink' -> 'animal mammal' / 'signs and symbols' / 'food and drink'."""
    return " ".join(name.replace("&", " and ").replace("-", " ").replace("_", " ").lower().split())


def png_bytes(image) -> bytes:
    """A PIL image as deterministic PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def make_splits(
    name: str, items: Iterable[Item], classnames: list[str], templates: list[str], source: str, note: str = ""
) -> tuple[EvalSet, EvalSet]:
    """(train, test) EvalSets of the items in key order; an item whose image fails to encode is a counted skip."""
    index = {c: i for i, c in enumerate(classnames)}
    parts = {"train": ([], [], []), "test": ([], [], [])}
    skipped = {"train": {}, "test": {}}
    items = sorted(items, key=lambda i: i.key)
    train = train_keys(items)
    for item in items:
        split = "train" if item.key in train else "test"
        data = item.image()
        if data is None:
            skipped[split]["unrenderable_image"] = skipped[split].get("unrenderable_image", 0) + 1
            continue
        keys, images, labels = parts[split]
        keys.append(item.key)
        images.append(data)
        labels.append(index[item.classname])
    out = []
    for split in ("train", "test"):
        keys, images, labels = parts[split]
        out.append(
            EvalSet(
                name=name,
                split=split,
                keys=keys,
                images=images,
                labels=np.asarray(labels, dtype=np.int64),
                captions=None,
                classnames=list(classnames),
                templates=list(templates),
                skipped=skipped[split],
                source=source,
                note=note,
            )
        )
    return out[0], out[1]
