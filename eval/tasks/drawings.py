"""`clipart` and `stamps`: Open Clip Art and Tux Paint stamps by their top-level category.

clipart keeps the categories with at least 40 drawings that name a subject: it drops `unsorted` and `special` (no
common subject) and the tiny `decorations`, `science`, `containers`, `logos`, `buttons`; at most 200 drawings per
category (chosen by key hash) keep the task small (the big `computer` and `shapes` have 2,158 and 1,645).
stamps keeps categories with at least 10 stamps (drops `medical`, `naturalforces`), every stamp; SVG-only stamps are
rendered as the web builder renders them, and a stamp cairosvg refuses is a counted skip.
"""

from __future__ import annotations

from eval.datasets import EvalSet
from eval.tasks.common import WEB_NOTE, Item, cap_per_class, make_splits, readable
from eval.tasks.images import record_png
from wit_builder.web import sources

CLIPART_MIN = 40
CLIPART_CAP = 200
CLIPART_DROP = ("unsorted", "special")
STAMPS_MIN = 10

CLIPART_TEMPLATES = [
    "a clip art drawing of {c}.",
    "a clip art of {c}.",
    "a vector drawing of {c}.",
    "an illustration of {c}.",
    "a cartoon drawing of {c}.",
    "a simple drawing in the {c} category.",
]
STAMP_TEMPLATES = [
    "a stamp of {c}.",
    "a cartoon picture of {c}.",
    "a colourful picture of {c}.",
    "a children's drawing program stamp of {c}.",
    "an illustration of {c}.",
]


def record_key(rec: sources.ImageRecord) -> str:
    """A unique, tar-safe key for a collection record: collection/id with dots made underscores."""
    return f"{rec.collection}/{rec.image_id}".replace(".", "_")


def record_items(records, category_of) -> list[Item]:
    """Items of the records whose category_of(record) is not None."""
    items = []
    for rec in records:
        name = category_of(rec)
        if name is not None:
            items.append(Item(record_key(rec), name, lambda rec=rec: record_png(rec)))
    return items


def _frequent(records, minimum: int, drop=()) -> list[str]:
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.category] = counts.get(rec.category, 0) + 1
    return sorted(c for c, n in counts.items() if n >= minimum and c not in drop)


def build_clipart() -> tuple[EvalSet, EvalSet]:
    """(train, test) of Open Clip Art drawings labelled by top-level category."""
    records = list(sources.openclipart())
    kept = _frequent(records, CLIPART_MIN, CLIPART_DROP)
    names = {c: readable(c) for c in kept}
    items = cap_per_class(record_items(records, lambda r: names.get(r.category)), CLIPART_CAP)
    classnames = [names[c] for c in kept]
    return make_splits("clipart", items, classnames, CLIPART_TEMPLATES, "openclipart-png", WEB_NOTE)


def build_stamps() -> tuple[EvalSet, EvalSet]:
    """(train, test) of Tux Paint stamps labelled by top-level category."""
    records = list(sources.tuxpaint())
    kept = _frequent(records, STAMPS_MIN)
    names = {c: readable(c) for c in kept}
    items = record_items(records, lambda r: names.get(r.category))
    classnames = [names[c] for c in kept]
    return make_splits("stamps", items, classnames, STAMP_TEMPLATES, "tuxpaint-stamps-default", WEB_NOTE)
