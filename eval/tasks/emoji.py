"""`emoji-group` and `emoji-subgroup`: every fully-qualified emoji of emoji-test.txt rendered with Noto Color Emoji,
labelled by its CLDR group or subgroup. The filter: the `Component` group (skin-tone and hair swatches, not pictures
of anything) is dropped, and emoji-subgroup drops subgroups with fewer than 5 emoji. No cap: ~3,600 renders, ~10 s."""

from __future__ import annotations

from collections import Counter

from eval.datasets import EvalSet
from eval.tasks.common import WEB_NOTE, Item, make_splits, readable
from eval.tasks.images import emoji_png
from wit_builder.web import sources

DROP_GROUPS = ("Component",)
MIN_SUBGROUP = 5
TEMPLATES = [
    "an emoji of {c}.",
    "a {c} emoji.",
    "an emoji from the {c} category.",
    "an icon of {c}.",
    "a small colourful picture of {c}.",
]


def emoji_entries() -> list[tuple[str, str, str, str]]:
    """(key, emoji, group, subgroup) of every emoji the tasks keep (all but the dropped groups)."""
    out = []
    for rec in sources.emoji():
        group, subgroup = (s.strip() for s in dict(rec.texts)["emoji/group"].split(":", 1))
        if group not in DROP_GROUPS:
            out.append((f"emoji/{rec.image_id}", rec.emoji or "", group, subgroup))
    return out


def group_classes(entries) -> dict[str, str]:
    """CLDR group -> readable class name, in emoji-test.txt order."""
    return {g: readable(g) for g in dict.fromkeys(e[2] for e in entries)}


def subgroup_classes(entries) -> dict[str, str]:
    """Subgroup -> readable class name for subgroups with at least MIN_SUBGROUP emoji, in emoji-test.txt order."""
    counts = Counter(e[3] for e in entries)
    return {s: readable(s) for s in dict.fromkeys(e[3] for e in entries) if counts[s] >= MIN_SUBGROUP}


def _build(name: str, column: int, classes: dict[str, str], entries) -> tuple[EvalSet, EvalSet]:
    items = [Item(e[0], classes[e[column]], lambda ch=e[1]: emoji_png(ch)) for e in entries if e[column] in classes]
    return make_splits(name, items, list(classes.values()), TEMPLATES, "unicode-data emoji-test.txt", WEB_NOTE)


def build_group() -> tuple[EvalSet, EvalSet]:
    """(train, test) of emoji labelled by CLDR group."""
    entries = emoji_entries()
    return _build("emoji-group", 2, group_classes(entries), entries)


def build_subgroup() -> tuple[EvalSet, EvalSet]:
    """(train, test) of emoji labelled by CLDR subgroup (subgroups with at least 5 emoji)."""
    entries = emoji_entries()
    return _build("emoji-subgroup", 3, subgroup_classes(entries), entries)
