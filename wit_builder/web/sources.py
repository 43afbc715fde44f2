"""Read the three real collections into ImageRecords: one image file and every text the collection gives for it.

- Open Clip Art 0.18: each PNG's twin SVG carries RDF metadata; the Work's <dc:title>, <dc:description> (often empty,
  as on the web) and its keywords (<dc:subject><rdf:li>) become three texts.
- Tux Paint stamps: the .txt beside each stamp has an English first line, then `<lang>.utf8=<text>` lines; each
  language is its own text. Stamps that exist only as SVG are rendered to PNG at build time.
- Noto Color Emoji: every fully-qualified emoji of emoji-test.txt, rendered with Pillow; its CLDR name and its
  "group: subgroup" are the texts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wit_builder.paths import debian_path

NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "cc": "http://web.resource.org/cc/",
}
_METADATA = re.compile(rb"<rdf:RDF\b.*?</rdf:RDF>", re.S)
_LANG_LINE = re.compile(r"^([A-Za-z]{2,3}(?:_[A-Za-z]{2})?(?:@[A-Za-z]+)?)\.utf8=(.*)$")


@dataclass
class ImageRecord:
    """One image and its texts. `path` is a PNG/SVG on disk, or None for an emoji rendered at build time."""

    collection: str  # openclipart | tuxpaint | emoji
    image_id: str  # relative path (no extension) or emoji code points; unique per collection
    category: str
    path: Path | None
    texts: list[tuple[str, str]] = field(default_factory=list)  # (source, text)
    emoji: str | None = None


def openclipart_root() -> Path:
    return debian_path("usr/share/openclipart/png", "openclipart-png")


def read_openclipart_metadata(svg_bytes: bytes) -> tuple[str, str, list[str]] | None:
    """(title, description, keywords) of the Work in an SVG's RDF block; None when there is no readable block."""
    found = _METADATA.search(svg_bytes)
    if not found:
        return None
    try:
        rdf = ET.fromstring(found.group(0))
    except ET.ParseError:
        return None
    work = rdf.find("cc:Work", NS)
    if work is None:
        return None
    title = work.findtext("dc:title", default="", namespaces=NS)
    description = work.findtext("dc:description", default="", namespaces=NS)
    keywords = [li.text or "" for li in work.findall("dc:subject//rdf:li", NS)]
    return title, description, [k for k in keywords if k.strip()]


def openclipart(limit: int | None = None, skipped: dict[str, int] | None = None) -> Iterator[ImageRecord]:
    """Every Open Clip Art PNG with its twin SVG's title, description and keyword list."""
    png_root = openclipart_root()
    svg_root = debian_path("usr/share/openclipart/svg", "openclipart-svg")
    for n, png in enumerate(sorted(png_root.rglob("*.png"))):
        if limit is not None and n >= limit:
            return
        rel = png.relative_to(png_root)
        svg = svg_root / rel.with_suffix(".svg")  # names may contain dots: replace only the last suffix
        meta = read_openclipart_metadata(svg.read_bytes()) if svg.exists() else None
        if meta is None:
            if skipped is not None:
                skipped["openclipart/no_metadata"] = skipped.get("openclipart/no_metadata", 0) + 1
            continue
        title, description, keywords = meta
        texts = [("openclipart/title", title), ("openclipart/description", description)]
        if keywords:
            texts.append(("openclipart/keywords", ", ".join(keywords)))
        yield ImageRecord("openclipart", str(rel)[: -len(".png")], rel.parts[0], png, texts)


def parse_tuxpaint_text(text: str) -> list[tuple[str, str]]:
    """(language, caption) pairs of a Tux Paint stamp description: English first line, then `<lang>.utf8=` lines."""
    pairs: list[tuple[str, str]] = []
    for i, line in enumerate(text.splitlines()):
        line = line.rstrip("\r")
        match = _LANG_LINE.match(line)
        if match:
            pairs.append((match.group(1), match.group(2)))
        elif i == 0 and line.strip():
            pairs.append(("en", line))
    return pairs


def tuxpaint(limit: int | None = None, skipped: dict[str, int] | None = None) -> Iterator[ImageRecord]:
    """Every Tux Paint stamp that has an image (PNG, else SVG) and a description file; one text per language."""
    root = debian_path("usr/share/tuxpaint/stamps", "tuxpaint-stamps-default")
    for n, txt in enumerate(sorted(root.rglob("*.txt"))):
        if limit is not None and n >= limit:
            return
        image = next((p for p in (txt.with_suffix(".png"), txt.with_suffix(".svg")) if p.exists()), None)
        if image is None:
            if skipped is not None:
                skipped["tuxpaint/no_image"] = skipped.get("tuxpaint/no_image", 0) + 1
            continue
        pairs = parse_tuxpaint_text(txt.read_bytes().decode("utf-8", "replace"))
        rel = txt.relative_to(root)
        yield ImageRecord(
            "tuxpaint", str(rel)[: -len(".txt")], rel.parts[0], image, [(f"tuxpaint/{lang}", t) for lang, t in pairs]
        )


def parse_emoji_test(text: str) -> Iterator[tuple[str, str, str, str]]:
    """(code points, emoji, CLDR name, 'group: subgroup') for every fully-qualified line of emoji-test.txt."""
    group = subgroup = ""
    for line in text.splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and "; fully-qualified" in line:
            codes, rest = line.split(";", 1)
            emoji_and_name = rest.split("#", 1)[1].strip()  # "😀 E1.0 grinning face"
            char, _version, name = emoji_and_name.split(" ", 2)
            yield "_".join(codes.split()).lower(), char, name, f"{group}: {subgroup}"


def emoji(limit: int | None = None, skipped: dict[str, int] | None = None) -> Iterator[ImageRecord]:
    """Every fully-qualified emoji, to be rendered from Noto Color Emoji, with its CLDR name and group."""
    test_file = debian_path("usr/share/unicode/emoji/emoji-test.txt", "unicode-data")
    for n, (codes, char, name, group) in enumerate(parse_emoji_test(test_file.read_text(encoding="utf-8"))):
        if limit is not None and n >= limit:
            return
        yield ImageRecord(
            "emoji", codes, group.split(":")[0], None, [("emoji/name", name), ("emoji/group", group)], emoji=char
        )


COLLECTIONS = {"openclipart": openclipart, "tuxpaint": tuxpaint, "emoji": emoji}
