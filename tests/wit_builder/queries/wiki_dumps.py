"""Hand-written MediaWiki exports for the tests: plain .xml.bz2 and multistream + index, built from page tuples."""

from __future__ import annotations

import bz2
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

NAMESPACES = {0: "", 1: "Talk", 4: "Wikipedia", 6: "File", 10: "Template", 14: "Category"}


@dataclass(frozen=True)
class P:
    page_id: int
    title: str
    text: str = ""
    ns: int = 0
    redirect: str | None = None


def header(namespaces: dict[int, str] = NAMESPACES) -> str:
    names = "\n".join(
        f'      <namespace key="{k}" case="first-letter">{escape(v)}</namespace>'
        if v
        else f'      <namespace key="{k}" case="first-letter" />'
        for k, v in namespaces.items()
    )
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
        "  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>enwiki</dbname>\n"
        f"    <namespaces>\n{names}\n    </namespaces>\n  </siteinfo>\n"
    )


def page_xml(page: P) -> str:
    redirect = f"    <redirect title={quoteattr(page.redirect)} />\n" if page.redirect is not None else ""
    return (
        f"  <page>\n    <title>{escape(page.title)}</title>\n    <ns>{page.ns}</ns>\n    <id>{page.page_id}</id>\n"
        f"{redirect}    <revision>\n      <id>{page.page_id * 10}</id>\n"
        f'      <text bytes="{len(page.text)}" xml:space="preserve">{escape(page.text)}</text>\n'
        "    </revision>\n  </page>\n"
    )


def write_plain(path, pages: list[P], namespaces: dict[int, str] = NAMESPACES) -> str:
    xml = header(namespaces) + "".join(page_xml(p) for p in pages) + "</mediawiki>\n"
    with open(path, "wb") as handle:
        handle.write(bz2.compress(xml.encode("utf-8")))
    return str(path)


def write_multistream(
    path, index_path, pages: list[P], per_stream: int = 100, namespaces: dict[int, str] = NAMESPACES
) -> tuple[str, str, list[int]]:
    """Concatenated bz2 streams: header, groups of `per_stream` pages, footer; index lines offset:page_id:title."""
    data = bytearray(bz2.compress(header(namespaces).encode("utf-8")))
    index_lines, offsets = [], []
    for start in range(0, len(pages), per_stream):
        offsets.append(len(data))
        group = pages[start : start + per_stream]
        index_lines += [f"{len(data)}:{p.page_id}:{p.title}" for p in group]
        data += bz2.compress("".join(page_xml(p) for p in group).encode("utf-8"))
    data += bz2.compress(b"</mediawiki>\n")
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    with open(index_path, "wb") as handle:
        handle.write(bz2.compress(("\n".join(index_lines) + "\n").encode("utf-8")))
    return str(path), str(index_path), offsets


def many_pages(n: int, first_id: int = 1) -> list[P]:
    """n simple articles `Article k` whose text is `alpha beta k. [[Article 1]] links here.`"""
    return [
        P(first_id + k, f"Article {first_id + k}", f"alpha beta w{first_id + k}. [[Article {first_id}]] links here.")
        for k in range(n)
    ]
