"""All synsets' lemmas from the WordNet 3.0 database files (data.noun, data.verb, data.adj, data.adv).

Line format (wndb(5WN)): `synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt ...`, w_cnt in
hex; license lines start with two spaces. Lemmas keep their case, `_` becomes a space, and an adjective's syntactic
marker `(a)`, `(p)` or `(ip)` is removed. WordNet 3.0 has 82,115 noun synsets, 117,659 in all (EXPECTED_SYNSETS).
"""

from __future__ import annotations

import os
import re
from collections import Counter

import pyarrow as pa

from wit_builder.errors import WitError

FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
EXPECTED_SYNSETS = {"noun": 82_115, "verb": 13_767, "adj": 18_156, "adv": 3_621}
_MARKER = re.compile(r"\((a|p|ip)\)$")


def default_dir() -> str:
    from wit_builder.paths import debian_path

    return str(debian_path("usr/share/wordnet/data.noun", "wordnet-base").parent)


def parse_line(line: str, where: str) -> tuple[str, list[str]]:
    """(synset id `<offset>-<ss_type>`, lemmas) of one data-file line."""
    fields = line.split(" ")
    try:
        offset, ss_type, count = fields[0], fields[2], int(fields[3], 16)
        words = [fields[4 + 2 * i] for i in range(count)]
    except (IndexError, ValueError) as err:
        raise WitError(
            f"{where}: not a WordNet data line ({line[:60]!r}); point --wordnet at WordNet 3.0's dict folder"
        ) from err
    if not offset.isdigit() or ss_type not in ("n", "v", "a", "s", "r") or count == 0:
        raise WitError(f"{where}: not a WordNet data line ({line[:60]!r})")
    return f"{offset}-{ss_type}", [_MARKER.sub("", w).replace("_", " ") for w in words]


def read_wordnet(directory: str | None = None) -> tuple[pa.Table, Counter]:
    """(query, synset_id) for every lemma of every synset, and synsets counted per part of speech."""
    directory = directory or default_dir()
    queries, synsets = [], []
    counts: Counter = Counter()
    for name in FILES:
        path = os.path.join(directory, f"data.{name}")
        if not os.path.exists(path):
            raise WitError(
                f"{path} is missing: --wordnet must be a folder holding data.noun/verb/adj/adv "
                "(Debian wordnet-base: /usr/share/wordnet)"
            )
        with open(path, encoding="utf-8", errors="strict") as handle:
            try:
                for number, line in enumerate(handle, 1):
                    if line.startswith("  ") or not line.strip():
                        continue
                    synset, lemmas = parse_line(line, f"{path}:{number}")
                    counts[name] += 1
                    queries.extend(lemmas)
                    synsets.extend([synset] * len(lemmas))
            except UnicodeDecodeError as err:
                raise WitError(f"{path}: bytes that are not UTF-8 ({err}); is this a WordNet data file?") from err
    table = pa.table({"query": queries, "synset_id": synsets})
    return table, counts
