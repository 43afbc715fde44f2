"""Article-title popularity: views from a Wikimedia pageviews file when given, else in-links counted in the dump.

Pageviews formats accepted (https://dumps.wikimedia.org/other/pageviews/readme.html), plain, .gz or .bz2:
- hourly / aggregated `pageviews-*`:  `domain_code page_title count_views total_response_size`  (English: en, en.m)
- `pageviews-complete` daily:        `wiki_code page_title page_id access_method daily_total hourly_counts`
  (English: en.wikipedia)
Views of one title are summed over lines (domains, hours, access methods). A file where no line, or more than
MAX_BAD_FRACTION of the lines, has either shape is refused with an error: the wrong file must not give a short list.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import re
from collections import Counter

import pyarrow as pa

from wit_builder.errors import WitError
from wit_builder.queries.prose import normalize_title

log = logging.getLogger(__name__)

HOURLY_DOMAINS = frozenset({"en", "en.m"})
COMPLETE_DOMAINS = frozenset({"en.wikipedia"})
MAX_BAD_FRACTION = 0.01


def _open_text(path: str):
    opener = gzip.open if path.endswith(".gz") else bz2.open if path.endswith(".bz2") else open
    try:
        return opener(path, "rt", encoding="utf-8", errors="replace")
    except OSError as err:
        raise WitError(f"cannot open the pageviews file {path}: {err}") from err


def read_pageviews(path: str) -> tuple[pa.Table, Counter]:
    """(title, views) summed per English Wikipedia title, and counts of lines read / used / skipped by reason."""
    views: Counter = Counter()
    stats: Counter = Counter()
    try:
        with _open_text(path) as handle:
            for line in handle:
                stats["lines"] += 1
                fields = line.split()
                if len(fields) == 4 and fields[2].isdigit():
                    domain, title, count = fields[0], fields[1], int(fields[2])
                    english = domain in HOURLY_DOMAINS
                elif len(fields) in (5, 6) and fields[4].isdigit():
                    domain, title, count = fields[0], fields[1], int(fields[4])
                    english = domain in COMPLETE_DOMAINS
                else:
                    stats["skipped_bad_line"] += 1
                    if stats["skipped_bad_line"] <= 3:
                        log.warning("%s line %d is not a pageviews line: %r", path, stats["lines"], line[:80])
                    continue
                if not english:
                    stats["skipped_other_wiki"] += 1
                    continue
                stats["used"] += 1
                views[normalize_title(title)] += count
    except (EOFError, OSError) as err:
        raise WitError(f"{path}: the compressed pageviews file is truncated or corrupt ({err})") from err
    parsed = stats["lines"] - stats["skipped_bad_line"]
    if parsed == 0 or stats["skipped_bad_line"] > MAX_BAD_FRACTION * stats["lines"]:
        raise WitError(
            f"{path} is not a Wikimedia pageviews file: {stats['skipped_bad_line']:,} of {stats['lines']:,} lines "
            "have neither `domain title views bytes` nor `wiki title page_id access daily hourly` shape "
            "(get one from https://dumps.wikimedia.org/other/pageviews/)"
        )
    if stats["used"] == 0:
        raise WitError(f"{path} holds no English Wikipedia lines (domain en / en.m / en.wikipedia)")
    table = pa.table(
        {"title": list(views), "views": list(views.values())},
        schema=pa.schema([("title", pa.string()), ("views", pa.int64())]),
    )
    return table, stats


_QUALIFIER = re.compile(r" \([^()]*\)$")


def title_query(title: str) -> str:
    """The query for an article title: its trailing qualifier removed (`Mercury (planet)` -> `Mercury`), since a
    caption says "Mercury", never "Mercury (planet)"; the statistic of a shared query is the best title's."""
    return _QUALIFIER.sub("", title)
