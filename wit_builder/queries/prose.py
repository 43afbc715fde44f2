"""Wikitext -> prose, outgoing article links and a disambiguation flag, with mwparserfromhell (a maintained parser).

- Templates, comments and markup go (mwparserfromhell's strip_code), and so do HIDDEN_TAGS such as <ref>; link text
  stays.
- Links into another namespace or wiki ([[File:..]], [[Category:..]], [[fr:..]]) are removed with their captions, so
  'thumb|200px' never becomes words; links to articles are returned (normalised titles) for the in-link proxy.
- A page is a disambiguation page when it uses one of DISAMBIGUATION_TEMPLATES (or a template named '* disambiguation').
"""

from __future__ import annotations

import re

import mwparserfromhell
from mwparserfromhell.nodes import Heading, Tag, Template, Wikilink

_EMPTY = mwparserfromhell.parse("")  # assigned to emptied nodes; never mutated

DISAMBIGUATION_TEMPLATES = frozenset(
    {
        "disambiguation",
        "disambig",
        "disamb",
        "dab",
        "dis",
        "hndis",
        "geodis",
        "numberdis",
        "letter-numbercombdisambig",
        "disambiguation cleanup",
        "mil-unit-dis",
        "schooldis",
        "hospitaldis",
        "dbz",
    }
)
# Namespace names and aliases beyond those a dump declares (MediaWiki built-ins every wiki accepts).
EXTRA_PREFIXES = frozenset(
    {
        "image",
        "wp",
        "project",
        "wikt",
        "wiktionary",
        "commons",
        "w",
        "s",
        "q",
        "n",
        "b",
        "v",
        "m",
        "meta",
        "mw",
        "special",
        "media",
    }
)
# Tags whose content is not prose (strip_code would keep a <ref>'s citation text).
HIDDEN_TAGS = frozenset(
    {
        "ref",
        "references",
        "gallery",
        "math",
        "chem",
        "ce",
        "score",
        "timeline",
        "syntaxhighlight",
        "source",
        "pre",
        "imagemap",
        "templatedata",
        "graph",
        "mapframe",
        "maplink",
        "hiero",
    }
)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z]+)*$")
_SPACES = re.compile(r"[\s_]+")


def normalize_title(title: str) -> str:
    """MediaWiki's canonical title: `_` and runs of spaces -> one space, stripped, first letter upper-cased."""
    title = _SPACES.sub(" ", title).strip()
    return title[:1].upper() + title[1:]


def is_foreign(target: str, prefixes: frozenset[str]) -> bool:
    """True when a link target points into another namespace or wiki (File:, Category:, fr:, ...)."""
    target = target.strip().lstrip(":")
    if ":" not in target:
        return False
    prefix = target.split(":", 1)[0].strip().lower()
    return prefix in prefixes or prefix in EXTRA_PREFIXES or bool(_LANGUAGE.match(prefix))


def namespace_prefixes(namespaces: dict[int, str] | None) -> frozenset[str]:
    return frozenset(name.lower() for name in (namespaces or {}).values() if name)


def _is_disambiguation(template) -> bool:
    name = _SPACES.sub(" ", str(template.name).strip()).lower()
    return name in DISAMBIGUATION_TEMPLATES or name.endswith(" disambiguation")


def _walk(code, prefixes: frozenset[str], links: list[str]) -> None:
    """One pass over the tree: collect article links, empty foreign links and hidden tags in place (cheap: no
    re-parsing, no searching), and skip what was emptied."""
    for node in code.nodes:
        if isinstance(node, Wikilink):
            target = str(node.title)
            if is_foreign(target, prefixes):
                node.title, node.text = _EMPTY, None
                continue
            target = target.split("#", 1)[0]
            if target.strip():
                links.append(normalize_title(target))
            if node.text is not None:
                _walk(node.text, prefixes, links)
        elif isinstance(node, Template):
            for param in node.params:
                _walk(param.value, prefixes, links)
        elif isinstance(node, Tag):
            if str(node.tag).strip().lower() in HIDDEN_TAGS:
                node.contents = _EMPTY
            elif node.contents is not None:
                _walk(node.contents, prefixes, links)
        elif isinstance(node, Heading):
            _walk(node.title, prefixes, links)


def parse_article(text: str, prefixes: frozenset[str]) -> tuple[str, list[str], bool]:
    """(prose, link targets, is_disambiguation) for one article's wikitext."""
    code = mwparserfromhell.parse(text)
    if any(isinstance(node, Template) and _is_disambiguation(node) for node in code.nodes):
        return "", [], True
    links: list[str] = []
    _walk(code, prefixes, links)
    return code.strip_code(normalize=True, collapse=True).strip(), links, False
