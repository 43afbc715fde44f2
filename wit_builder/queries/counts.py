"""Partial counts per block of pages (unigrams, bigrams, titles, links, redirects) and their reduction with DuckDB.

A worker turns a block of pages into a PartialCounts and then into Arrow tables (to_tables); the driver writes each
as Parquet under a work folder (`<kind>-<part>.parquet`). reduce() sums them with DuckDB, which spills to disk past
its memory limit, so the aggregation is not bounded by one machine's memory.

PMI of a bigram (a, b), with c(.) the counts over the whole dump, N the number of tokens, B the number of bigrams
(adjacent pairs), by rule (QueryConfig.bigram_rule):
  metaclip  pmi = log2( c(ab) * N / (c(a) * c(b)) )            NLTK's BigramAssocMeasures.pmi, as MetaCLIP scores
  ratio     pmi = ln( (c(ab) / B) / ((c(a) / N) * (c(b) / N)) )
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from wit_builder.queries import prose as prose_mod
from wit_builder.queries.tokenize import count_into
from wit_builder.queries.wikipedia import ARTICLE_NS, Page

KINDS = ("unigrams", "bigrams", "titles", "links", "redirects")
DISAMBIGUATION_SUFFIX = " (disambiguation)"


@dataclass
class PartialCounts:
    unigrams: Counter = field(default_factory=Counter)
    bigrams: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)
    titles: list = field(default_factory=list)  # (page_id, title) of kept articles
    redirects: list = field(default_factory=list)  # (title, target) of article-namespace redirects
    stats: Counter = field(default_factory=Counter)

    def add(self, page: Page, prefixes: frozenset[str]) -> None:
        """Count one page; every page ends in exactly one of articles / skipped_<reason>."""
        if page.ns != ARTICLE_NS:
            self.stats["skipped_namespace"] += 1
            return
        title = prose_mod.normalize_title(page.title)
        if page.redirect is not None:
            self.stats["skipped_redirect"] += 1
            if page.redirect.strip():
                self.redirects.append((title, prose_mod.normalize_title(page.redirect.split("#", 1)[0])))
            return
        if title.endswith(DISAMBIGUATION_SUFFIX):
            self.stats["skipped_disambiguation"] += 1
            return
        text, links, disambiguation = prose_mod.parse_article(page.text, prefixes)
        if disambiguation:
            self.stats["skipped_disambiguation"] += 1
            return
        self.stats["articles"] += 1
        self.stats["tokens"] += count_into(text, self.unigrams, self.bigrams)
        self.links.update(links)
        self.titles.append((page.page_id, title))

    def to_tables(self) -> dict[str, pa.Table]:
        firsts, seconds = zip(*self.bigrams) if self.bigrams else ((), ())
        return {
            "unigrams": pa.table(
                {"token": list(self.unigrams), "count": list(self.unigrams.values())},
                schema=pa.schema([("token", pa.string()), ("count", pa.int64())]),
            ),
            "bigrams": pa.table(
                {"first": list(firsts), "second": list(seconds), "count": list(self.bigrams.values())},
                schema=pa.schema([("first", pa.string()), ("second", pa.string()), ("count", pa.int64())]),
            ),
            "titles": pa.table(
                {"page_id": [p for p, _ in self.titles], "title": [t for _, t in self.titles]},
                schema=pa.schema([("page_id", pa.int64()), ("title", pa.string())]),
            ),
            "links": pa.table(
                {"target": list(self.links), "count": list(self.links.values())},
                schema=pa.schema([("target", pa.string()), ("count", pa.int64())]),
            ),
            "redirects": pa.table(
                {"title": [t for t, _ in self.redirects], "target": [t for _, t in self.redirects]},
                schema=pa.schema([("title", pa.string()), ("target", pa.string())]),
            ),
        }


def count_pages(pages, namespaces: dict[int, str] | None) -> PartialCounts:
    """A PartialCounts for an iterable of pages (one worker's block)."""
    prefixes = prose_mod.namespace_prefixes(namespaces)
    partial = PartialCounts()
    for page in pages:
        partial.add(page, prefixes)
    return partial


def write_tables(tables: dict[str, pa.Table], work_dir: str, part: int) -> None:
    import pyarrow.parquet as pq

    os.makedirs(work_dir, exist_ok=True)
    for kind, table in tables.items():
        if table.num_rows:
            pq.write_table(table, os.path.join(work_dir, f"{kind}-{part:06d}.parquet"))


@dataclass(frozen=True)
class Reduced:
    tokens: int  # N
    bigram_total: int  # B
    articles: int
    distinct_unigrams: int
    distinct_bigrams: int


def connect(work_dir: str, memory_limit: str):
    import duckdb

    con = duckdb.connect()
    spill = os.path.join(work_dir, "duckdb_tmp")
    os.makedirs(spill, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute("SET preserve_insertion_order = false")
    for kind in KINDS:
        files = sorted(glob.glob(os.path.join(work_dir, f"{kind}-*.parquet")))
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        if files:
            con.execute(f"CREATE VIEW part_{kind} AS SELECT * FROM read_parquet([{listing}])")
        else:
            empty = {
                "unigrams": "NULL::VARCHAR AS token, 0::BIGINT AS count",
                "bigrams": "NULL::VARCHAR AS first, NULL::VARCHAR AS second, 0::BIGINT AS count",
                "titles": "0::BIGINT AS page_id, NULL::VARCHAR AS title",
                "links": "NULL::VARCHAR AS target, 0::BIGINT AS count",
                "redirects": "NULL::VARCHAR AS title, NULL::VARCHAR AS target",
            }[kind]
            con.execute(f"CREATE VIEW part_{kind} AS SELECT {empty} WHERE false")
    return con


def reduce(con) -> Reduced:
    """Sum the partial unigram and bigram counts into tables `unigram_totals` and `bigram_totals`."""
    con.execute(
        "CREATE TABLE unigram_totals AS SELECT token, sum(count)::BIGINT AS count FROM part_unigrams GROUP BY token"
    )
    con.execute(
        "CREATE TABLE bigram_totals AS SELECT first, second, sum(count)::BIGINT AS count FROM part_bigrams "
        "GROUP BY first, second"
    )
    tokens, distinct_u = con.execute("SELECT coalesce(sum(count), 0), count(*) FROM unigram_totals").fetchall()[0]
    bigrams, distinct_b = con.execute("SELECT coalesce(sum(count), 0), count(*) FROM bigram_totals").fetchall()[0]
    articles = con.execute("SELECT count(DISTINCT page_id) FROM part_titles").fetchall()[0][0]
    return Reduced(int(tokens), int(bigrams), int(articles), int(distinct_u), int(distinct_b))


def unigrams_at_least(con, min_count: int) -> pa.Table:
    """(query, count) for tokens seen at least min_count times."""
    return con.sql(
        "SELECT token AS query, count FROM unigram_totals WHERE count >= $min ORDER BY count DESC, token",
        params={"min": min_count},
    ).to_arrow_table()


_PMI_SQL = {
    "metaclip": "log2(b.count::DOUBLE * $N / (ua.count::DOUBLE * ub.count::DOUBLE))",
    "ratio": "ln((b.count::DOUBLE / $B) / ((ua.count::DOUBLE / $N) * (ub.count::DOUBLE / $N)))",
}


def bigrams_by_pmi(con, reduced: Reduced, min_count: int, min_pmi: float, *, rule: str) -> pa.Table:
    """(query, count, pmi) for bigrams seen at least min_count times with pmi >= min_pmi, pmi by `rule` (module
    docstring), best first."""
    if reduced.tokens == 0 or reduced.bigram_total == 0:
        return pa.table(
            {"query": pa.array([], pa.string()), "count": pa.array([], pa.int64()), "pmi": pa.array([], pa.float64())}
        )
    params = {"N": reduced.tokens, "min_count": min_count, "min_pmi": min_pmi}
    if rule == "ratio":
        params["B"] = reduced.bigram_total
    return con.sql(
        f"""
        WITH scored AS (
            SELECT b.first || ' ' || b.second AS query, b.count, {_PMI_SQL[rule]} AS pmi
            FROM bigram_totals b
            JOIN unigram_totals ua ON ua.token = b.first
            JOIN unigram_totals ub ON ub.token = b.second
            WHERE b.count >= $min_count)
        SELECT * FROM scored WHERE pmi >= $min_pmi ORDER BY pmi DESC, query
        """,
        params=params,
    ).to_arrow_table()


def title_inlinks(con) -> pa.Table:
    """(title, inlinks): links from articles to each article, also through one redirect hop."""
    return con.sql(
        """
        WITH links AS (SELECT target, sum(count)::BIGINT AS count FROM part_links GROUP BY target),
             resolved AS (
               SELECT coalesce(r.target, l.target) AS target, l.count
               FROM links l LEFT JOIN (SELECT title, any_value(target) AS target FROM part_redirects GROUP BY title) r
               ON r.title = l.target)
        SELECT t.title, coalesce(sum(resolved.count), 0)::BIGINT AS inlinks
        FROM (SELECT DISTINCT title FROM part_titles) t LEFT JOIN resolved ON resolved.target = t.title
        GROUP BY t.title ORDER BY inlinks DESC, t.title
        """
    ).to_arrow_table()


def count_batch(pages: list[Page], namespaces: dict[int, str] | None) -> tuple[dict[str, pa.Table], dict]:
    """Worker side, single-stream dumps: one batch of pages read by the driver -> partial tables and stats."""
    partial = count_pages(pages, namespaces)
    return partial.to_tables(), dict(partial.stats)


def count_byte_range(
    uri: str, start: int, end: int, namespaces: dict[int, str] | None
) -> tuple[dict[str, pa.Table], dict]:
    """Worker side, multistream dumps: every bz2 stream in [start, end) -> partial tables and stats."""
    from wit_builder.queries.wikipedia import iter_range_pages, open_binary

    read_stats: Counter = Counter()
    with open_binary(uri) as handle:
        partial = count_pages(iter_range_pages(handle, start, end, namespaces, read_stats, uri), namespaces)
    partial.stats.update(read_stats)
    return partial.to_tables(), dict(partial.stats)
