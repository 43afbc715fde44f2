"""The distribution-shift family: `shift-clipart`, `shift-stamps`, `shift-emoji` share ONE class list, in one order,
so a probe trained on one source is tested on the others (the paper's robustness study in small).

The classes are the coarse subjects all three sources have at least ~30 images of: animal, building, food, plant,
vehicle. `person` is left out (Tux Paint has ~14 stamps of people besides body parts), as is clothing (no Open Clip
Art category). Each source's categories / subgroups map onto them below; at most 150 images per class and source.
"""

from __future__ import annotations

from eval.datasets import EvalSet
from eval.tasks.common import WEB_NOTE, Item, cap_per_class, make_splits
from eval.tasks.drawings import record_items
from eval.tasks.emoji import emoji_entries
from eval.tasks.images import emoji_png
from wit_builder.web import sources

CLASSES = ["animal", "building", "food", "plant", "vehicle"]
CAP = 150
TEMPLATES = [
    "a picture of a {c}.",
    "a drawing of a {c}.",
    "an image of a {c}.",
    "an icon of a {c}.",
    "a cartoon of a {c}.",
]
CLIPART_MAP = {
    "animals": "animal",
    "buildings": "building",
    "food": "food",
    "plants": "plant",
    "transportation": "vehicle",
}
STAMPS_MAP = {  # top-level category, or category/subfolder where only part of a category fits
    "animals": "animal",
    "town/houses": "building",
    "town/monuments": "building",
    "food": "food",
    "plants": "plant",
    "vehicles": "vehicle",
}
EMOJI_MAP = {
    **dict.fromkeys(
        ["animal-mammal", "animal-bird", "animal-amphibian", "animal-reptile", "animal-marine", "animal-bug"], "animal"
    ),
    **dict.fromkeys(["place-building", "place-religious"], "building"),
    **dict.fromkeys(
        ["food-fruit", "food-vegetable", "food-prepared", "food-asian", "food-marine", "food-sweet"], "food"
    ),
    **dict.fromkeys(["plant-flower", "plant-other"], "plant"),
    **dict.fromkeys(["transport-ground", "transport-air", "transport-water"], "vehicle"),
}


def _stamp_class(rec: sources.ImageRecord) -> str | None:
    parts = rec.image_id.split("/")
    return STAMPS_MAP.get("/".join(parts[:2])) or STAMPS_MAP.get(parts[0])


def _splits(name: str, items: list[Item], source: str) -> tuple[EvalSet, EvalSet]:
    return make_splits(name, cap_per_class(items, CAP), CLASSES, TEMPLATES, source, WEB_NOTE)


def build_clipart() -> tuple[EvalSet, EvalSet]:
    """(train, test) of Open Clip Art drawings on the shared coarse classes."""
    items = record_items(sources.openclipart(), lambda r: CLIPART_MAP.get(r.category))
    return _splits("shift-clipart", items, "openclipart-png")


def build_stamps() -> tuple[EvalSet, EvalSet]:
    """(train, test) of Tux Paint stamps on the shared coarse classes."""
    return _splits("shift-stamps", record_items(sources.tuxpaint(), _stamp_class), "tuxpaint-stamps-default")


def build_emoji() -> tuple[EvalSet, EvalSet]:
    """(train, test) of emoji on the shared coarse classes, mapped from their CLDR subgroups."""
    items = [Item(k, EMOJI_MAP[s], lambda ch=ch: emoji_png(ch)) for k, ch, _, s in emoji_entries() if s in EMOJI_MAP]
    return _splits("shift-emoji", items, "unicode-data emoji-test.txt")
