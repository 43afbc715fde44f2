"""QueryConfig: the paper's thresholds (as MetaCLIP reconstructs them) and the rule that scales them to smaller dumps.

Scaling rule (docs/queries.md): a count threshold T stated for English Wikipedia (REFERENCE_TOKENS tokens) becomes
min(T, max(floor, ceil(T * N / REFERENCE_TOKENS))) for a corpus of N tokens, i.e. the same *rate* per token, never
above T itself; the in-link threshold for titles scales the same way with the number of articles (REFERENCE_ARTICLES).
MetaCLIP's bigram PMI threshold (base 2) is lowered by log2(REFERENCE_TOKENS / N) on a smaller corpus (bigram_thresholds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# English Wikipedia, order of magnitude (docs/queries.md): ~4.5 billion words of article prose, ~6.6 million articles.
REFERENCE_TOKENS = 4_500_000_000
REFERENCE_ARTICLES = 6_600_000

# MetaCLIP's per-source totals (Xu et al. 2023, metadata of 500k entries), reported beside ours.
METACLIP_TOTALS = {"unigram": 251_465, "bigram": 100_646, "title": 61_235, "wordnet": 86_654}

SOURCES = ("unigram", "bigram", "title", "wordnet")  # admission order: a later source adds only what is new
BIGRAM_RULES = ("metaclip", "ratio")


@dataclass(frozen=True)
class QueryConfig:
    out: str = "queries.parquet"
    wiki_dump: str | None = None  # None: the gensim enwiki sample (the offline demo)
    wiki_index: str | None = None  # multistream index; found next to a *multistream*.xml.bz2 when None
    wordnet_dir: str | None = None  # None: /usr/share/wordnet of Debian's wordnet-base (the cache first)
    pageviews: str | None = None  # Wikimedia pageviews file; None: in-links counted in the dump (proxy)
    target_size: int = 500_000  # paper: 500,000 queries; a cap
    unigram_source: str = "auto"  # wiki | wordfreq | auto (wordfreq when the dump is under auto_min_tokens)
    auto_min_tokens: int = 100_000_000  # fewer tokens: dump counts say little about "≥100 in enwiki"
    min_unigram_count: int = 100  # paper: words occurring at least 100 times in English Wikipedia
    bigram_rule: str = "metaclip"  # metaclip: NLTK's base-2 PMI >= min_pmi, no count filter (MetaCLIP's build)
    # ratio: ln p(ab)/(p(a)p(b)) >= ln min_pmi_ratio, count >= min_bigram_count
    min_pmi: float = 30.0  # metaclip rule: MetaCLIP's threshold on log2(c(ab) N / (c(a) c(b)))
    min_bigram_count: int = 100  # ratio rule: occurrences at reference scale before PMI is trusted
    min_pmi_ratio: float = 30.0  # ratio rule: p(ab)/(p(a)p(b)) >= this; we store ln of it
    min_title_views: int = 70  # MetaCLIP: titles with at least 70 views (in the pageviews file given)
    min_title_inlinks: int = 500  # ours: the proxy threshold at reference scale (in-links from articles)
    count_floor: int = 3  # a scaled count threshold never goes below this
    workers: int | None = None  # concurrent Ray tasks; None: all CPUs of the cluster
    pages_per_task: int = 500  # single-stream dumps: at most this many pages per batch sent to a worker
    task_chars: int = 1_000_000  # single-stream dumps: ... and at most about this much wikitext
    streams_per_task: int = 32  # multistream dumps: bz2 streams (~100 pages each) per task
    work_dir: str | None = None  # partial counts (Parquet); None: a temporary folder, removed at the end
    memory_limit: str = "2GB"  # DuckDB's memory limit for the reduction (it spills to work_dir beyond it)

    def scaled(self, threshold: int, size: int, reference: int) -> int:
        """The threshold at this corpus size: the same rate per token (or per article), never below count_floor and
        never above the threshold stated for English Wikipedia (a dump larger than the reference keeps the paper's)."""
        return min(threshold, max(self.count_floor, math.ceil(threshold * size / reference)))

    def as_dict(self) -> dict:
        return asdict(self)


def bigram_thresholds(config: QueryConfig, tokens: int) -> tuple[int, float]:
    """(least count, least PMI in the rule's unit) for a corpus of `tokens` tokens.

    metaclip: PMI = log2(c(ab) N / (c(a) c(b))) peaks at log2 N (two words seen once, together), so on a corpus
    smaller than the reference the threshold drops by log2(REFERENCE_TOKENS / N) to keep its distance below that
    peak; it never rises above min_pmi. ratio: ln of min_pmi_ratio (a ratio of rates needs no scaling), count scaled."""
    if config.bigram_rule == "ratio":
        return config.scaled(config.min_bigram_count, tokens, REFERENCE_TOKENS), math.log(config.min_pmi_ratio)
    shift = math.log2(REFERENCE_TOKENS / tokens) if 0 < tokens < REFERENCE_TOKENS else 0.0
    return 1, config.min_pmi - shift
