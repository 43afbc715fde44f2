"""`rendered-text`: binary sentiment of short movie-review sentences drawn as images, in the spirit of the paper's
Rendered SST2 (can the model read?). Sentences combine the hand-written subjects and phrases below (10 x 15 per
class = 300 images); each is drawn black on white in one of the installed text fonts, chosen by key hash."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from eval.datasets import EvalSet
from eval.tasks.common import Item, key_hash, make_splits, png_bytes
from wit_builder.errors import WitError
from wit_builder.paths import debian_root

SIZE = 224
FONT_PX = 24
MAX_FONTS = 8
CLASSNAMES = ["negative", "positive"]
TEMPLATES = [
    "a {c} review of a movie.",
    "a {c} movie review.",
    "text of a {c} review.",
    "a sentence with a {c} opinion.",
    "a {c} comment about a film.",
]
SUBJECTS = [
    "this movie",
    "the film",
    "the story",
    "the acting",
    "the script",
    "the director's work",
    "the soundtrack",
    "the ending",
    "every scene",
    "the whole cast",
]
PHRASES = {
    "positive": [
        "is wonderful",
        "is a delight from start to finish",
        "is moving and beautifully made",
        "made me laugh and cry",
        "is brilliant",
        "is a joy to watch",
        "is smart and funny",
        "is deeply touching",
        "is a small masterpiece",
        "is charming",
        "is gripping all the way",
        "is warm and generous",
        "feels fresh and alive",
        "is superbly crafted",
        "left me smiling for days",
    ],
    "negative": [
        "is terrible",
        "is a waste of time",
        "is dull and lifeless",
        "made me want to leave",
        "is awful",
        "is a chore to sit through",
        "is stupid and boring",
        "is painfully slow",
        "is a complete mess",
        "is tedious",
        "falls flat every time",
        "is cold and empty",
        "feels stale and tired",
        "is poorly made",
        "left me angry and bored",
    ],
}
_SKIP_FONTS = ("emoji", "math", "symbol", "extralight")


def font_dirs() -> tuple[Path, ...]:
    """Where fonts are looked for: the cache's Debian root, then the system."""
    return (debian_root() / "usr/share/fonts", Path("/usr/share/fonts"))


@functools.lru_cache(maxsize=1)
def text_fonts() -> tuple[Path, ...]:
    """The installed text fonts rendered-text draws with (cached per process)."""
    return find_fonts(font_dirs())


def find_fonts(roots) -> tuple[Path, ...]:
    """Up to 8 TrueType text fonts under the roots (no emoji/math/symbol faces), in a fixed order; WitError if none."""
    found: dict[str, Path] = {}
    for root in roots:
        if root.is_dir():
            for p in sorted(root.rglob("*.ttf")):
                if not any(s in p.name.lower() for s in _SKIP_FONTS):
                    found.setdefault(p.name, p)
    if not found:
        raise WitError(
            "rendered-text needs a TrueType text font and none is installed under /usr/share/fonts: "
            "run `apt-get install fonts-dejavu-core` (or unpack it into the cache with `make data`)"
        )
    fonts = [found[n] for n in sorted(found)]
    step = max(1, len(fonts) // MAX_FONTS)
    return tuple(fonts[::step][:MAX_FONTS])


def sentences() -> list[tuple[str, str, str]]:
    """(key, sentence, class) of every composed sentence."""
    out = []
    for label in CLASSNAMES:
        for i, subject in enumerate(SUBJECTS):
            for j, phrase in enumerate(PHRASES[label]):
                text = f"{subject[0].upper()}{subject[1:]} {phrase}."
                out.append((f"{label}-{i:02d}-{j:02d}", text, label))
    return out


def render(text: str, font_path: Path) -> bytes:
    """The sentence wrapped and drawn in black on a white square."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), FONT_PX)
    image = Image.new("L", (SIZE, SIZE), 255)
    draw = ImageDraw.Draw(image)
    draw.multiline_text((12, 40), textwrap.fill(text, width=16), fill=0, font=font, spacing=6)
    return png_bytes(image)


def build() -> tuple[EvalSet, EvalSet]:
    """(train, test) of the rendered sentences."""
    fonts = text_fonts()
    items = [
        Item(key, label, lambda t=text, f=fonts[key_hash(key, "font") % len(fonts)]: render(t, f))
        for key, text, label in sentences()
    ]
    return make_splits("rendered-text", items, CLASSNAMES, TEMPLATES, "composed sentences")
