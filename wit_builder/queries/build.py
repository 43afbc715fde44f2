"""Merge the sources into one deduplicated query list with provenance, cap it, and write it as Parquet + metadata.

Sources are admitted in the paper's order (SOURCES): unigrams, bigrams, titles, then WordNet lemmas not already in
the list. Every entry is first put in normal form (normalize.py); entries that cannot be queries are counted per
source and reason. Duplicates across sources become one row whose `sources` lists every source that admitted it,
with each source's statistic in its own column:

  unigram_count     occurrences (in the dump, or estimated from wordfreq: metadata `unigram_source`)
  bigram_pmi        PMI by the bigram rule (metaclip: log2 c(ab)N/(c(a)c(b)); ratio: ln p(ab)/(p(a)p(b)); metadata
                    `thresholds.pmi_unit`), and bigram_count, its occurrences in the dump
  title_popularity  views in the pageviews file, or in-links in the dump (metadata `title_popularity`)
  wordnet_synsets   ids `<offset>-<ss_type>` of the synsets that have the lemma

The cap (target_size) keeps every WordNet entry (the paper adds "all WordNet synsets") and shares the rest among
unigrams, bigrams and titles in MetaCLIP's proportions (251,465 : 100,646 : 61,235; a source with fewer entries
leaves its room to the others), each keeping its best entries (higher count / PMI / popularity first). An entry
belongs to the source that brought it in; what the cap drops is counted per source (`dropped_cap`).
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.queries.config import METACLIP_TOTALS, SOURCES
from wit_builder.queries.normalize import normalize

METADATA_KEY = b"wit.queries"
SCHEMA = pa.schema(
    [
        ("query", pa.string()),
        ("sources", pa.list_(pa.string())),
        ("unigram_count", pa.int64()),
        ("bigram_pmi", pa.float64()),
        ("bigram_count", pa.int64()),
        ("title_popularity", pa.int64()),
        ("wordnet_synsets", pa.list_(pa.string())),
    ]
)


def _rows(table: pa.Table | None):
    return table.to_pylist() if table is not None else []


def merge(sources: dict[str, pa.Table | None], target_size: int) -> tuple[pa.Table, dict]:
    """The query table and a report per source: input rows, dropped_<reason>, admitted (distinct, in normal form),
    new (not admitted by an earlier source), dropped_cap, in_list (rows naming it) and first (rows it brought in;
    these sum to the list's length, like MetaCLIP's per-source totals)."""
    entries: dict[str, dict] = {}
    report: dict[str, Counter] = {}
    for source in SOURCES:
        counts = report[source] = Counter()
        seen: set[str] = set()
        for row in _rows(sources.get(source)):
            counts["input"] += 1
            query, reason = normalize(row["query"])
            if reason:
                counts[f"dropped_{reason}"] += 1
                continue
            entry = entries.get(query)
            if entry is None:
                entry = entries[query] = {"query": query, "sources": []}
                counts["new"] += 1
            if source not in entry["sources"]:
                entry["sources"].append(source)
            if query not in seen:
                seen.add(query)
                counts["admitted"] += 1
            _add_statistic(entry, source, row)
    _cap(entries, target_size, report)
    rows = sorted(entries.values(), key=lambda e: e["query"])
    for entry in rows:
        report[entry["sources"][0]]["first"] += 1  # sources are in admission order: this one brought it in
        for source in entry["sources"]:
            report[source]["in_list"] += 1
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    return table, {source: dict(counts) for source, counts in report.items()}


def _add_statistic(entry: dict, source: str, row: dict) -> None:
    if source == "unigram":  # two raw tokens with one normal form (NFC variants): their counts add up
        entry["unigram_count"] = entry.get("unigram_count", 0) + row["count"]
    elif source == "bigram":
        if row["pmi"] > entry.get("bigram_pmi", float("-inf")):
            entry["bigram_pmi"], entry["bigram_count"] = row["pmi"], row["count"]
    elif source == "title":
        entry["title_popularity"] = max(entry.get("title_popularity", 0), row["popularity"])
    elif source == "wordnet":
        synsets = entry.setdefault("wordnet_synsets", [])
        if row["synset_id"] not in synsets:
            synsets.append(row["synset_id"])


_STAT = {"unigram": "unigram_count", "bigram": "bigram_pmi", "title": "title_popularity"}


def quotas(room: int, sizes: dict[str, int], weights: dict[str, int]) -> dict[str, int]:
    """Split `room` places among sources in proportion to `weights` (MetaCLIP's per-source totals), never giving a
    source more than it has: what a small source leaves goes to the others; rounding by largest remainder."""
    quota = {s: 0 for s in sizes}
    open_sources = {s for s, n in sizes.items() if n > 0}
    left = room
    while open_sources and left > 0:
        total = sum(weights[s] for s in open_sources)
        share = {s: left * weights[s] / total for s in open_sources}
        full = {s for s in open_sources if sizes[s] - quota[s] <= share[s]}
        if not full:
            floors = {s: int(share[s]) for s in open_sources}
            spare = left - sum(floors.values())
            for s in sorted(open_sources, key=lambda s: (-(share[s] - floors[s]), SOURCES.index(s)))[:spare]:
                floors[s] += 1
            for s in open_sources:
                quota[s] += floors[s]
            break
        for s in full:
            left -= sizes[s] - quota[s]
            quota[s] = sizes[s]
        open_sources -= full
    return quota


def _cap(entries: dict[str, dict], target_size: int, report: dict[str, Counter]) -> None:
    """Keep every WordNet entry; share the rest of the room among the other sources in MetaCLIP's proportions
    (quotas), each keeping its best entries by its statistic."""
    if len(entries) <= target_size:
        return
    groups: dict[str, list[dict]] = {s: [] for s in _STAT}
    protected = 0
    for entry in entries.values():
        if "wordnet" in entry["sources"]:
            protected += 1
        else:
            groups[entry["sources"][0]].append(entry)
    room = max(0, target_size - protected)
    quota = quotas(room, {s: len(g) for s, g in groups.items()}, METACLIP_TOTALS)
    for source, group in groups.items():
        group.sort(key=lambda e: (-(e.get(_STAT[source]) or 0), e["query"]))
        for entry in group[quota[source] :]:
            for name in entry["sources"]:
                report[name]["dropped_cap"] += 1
            del entries[entry["query"]]


def write(table: pa.Table, path: str, metadata: dict) -> None:
    """Write the query list with its metadata (JSON under the Parquet key `wit.queries`)."""
    schema = table.schema.with_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()})
    pq.write_table(table.cast(schema), path)


def read_metadata(path: str) -> dict:
    return json.loads(pq.read_schema(path).metadata[METADATA_KEY])


def summary(report: dict, total: int) -> str:
    """A readable per-source table with MetaCLIP's totals beside ours."""
    header = f"{'source':<9} {'admitted':>10} {'in list':>10} {'brought in':>10} {'MetaCLIP':>10}  dropped"
    lines = [header, "-" * len(header)]
    for source in SOURCES:
        counts = report.get(source, {})
        dropped = ", ".join(
            f"{k[len('dropped_') :]} {v:,}" for k, v in sorted(counts.items()) if k.startswith("dropped_")
        )
        lines.append(
            f"{source:<9} {counts.get('admitted', 0):>10,} {counts.get('in_list', 0):>10,} "
            f"{counts.get('first', 0):>10,} {METACLIP_TOTALS[source]:>10,}  {dropped or '-'}"
        )
    lines.append(f"{'total':<9} {'':>10} {'':>10} {total:>10,} {sum(METACLIP_TOTALS.values()):>10,}")
    return "\n".join(lines)
