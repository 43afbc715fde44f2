"""Build the CLIP paper's query list (Radford et al. 2021, §2.2): Wikipedia words and high-PMI bigrams, popular
titles, and WordNet lemmas.

The dump is counted in parallel by Ray tasks (byte ranges of bz2 streams for a multistream dump; batches of pages
streamed by one reader for a plain .xml.bz2); partial counts become Parquet files reduced with DuckDB. Details, the
normal form of a query and the scaling rule for small dumps: docs/queries.md.

Examples:
  wit queries --out OUT/queries.parquet                      # offline demo: gensim dump sample + wordfreq + WordNet
  wit queries --out q.parquet --wiki-dump enwiki-latest-pages-articles-multistream.xml.bz2 --pageviews pv.gz
  ray job submit --working-dir . -- python pipelines/build_queries.py --out /shared/queries.parquet \\
      --wiki-dump s3://dumps/enwiki-latest-pages-articles-multistream.xml.bz2
"""

from __future__ import annotations

if __name__ == "__main__":  # `python pipelines/build_queries.py` puts pipelines/ first on sys.path
    import os
    import sys

    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import os
import sys
import time

from wit_builder.queries.config import BIGRAM_RULES, QueryConfig

HELP = "build the 500k query list from a Wikipedia dump, WordNet and pageviews (offline demo sources by default)"

PROXY_NOTE = (
    "no pageviews file was given: titles are ranked by in-links, the number of links from articles of "
    "this dump to the title (one redirect hop resolved), a proxy for the paper's search volume"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = QueryConfig()
    parser.add_argument("--out", default=d.out, help="the Parquet file to write (default %(default)s)")
    parser.add_argument(
        "--wiki-dump",
        help="pages-articles .xml.bz2 or -multistream.xml.bz2, local or s3:// "
        "(default: the enwiki sample from the gensim wheel)",
    )
    parser.add_argument(
        "--wiki-index",
        help="the multistream index (offset:page_id:title lines; found beside a *multistream.xml.bz2 when omitted)",
    )
    parser.add_argument(
        "--wordnet",
        dest="wordnet_dir",
        help="folder with WordNet 3.0 data.noun/verb/adj/adv (default: Debian wordnet-base)",
    )
    parser.add_argument(
        "--pageviews",
        help="a Wikimedia pageviews file (.gz/.bz2 ok); without it titles are ranked by in-links counted in the dump",
    )
    parser.add_argument("--target-size", type=int, default=d.target_size, help="cap on the list (paper: 500,000)")
    parser.add_argument(
        "--unigram-source",
        choices=("auto", "wiki", "wordfreq"),
        default=d.unigram_source,
        help="unigram counts from the dump, or estimated from wordfreq's large_en list; auto: "
        f"wordfreq when the dump has fewer than {d.auto_min_tokens:,} tokens",
    )
    parser.add_argument(
        "--min-unigram-count",
        type=int,
        default=d.min_unigram_count,
        help="occurrences in English Wikipedia (paper: 100; scaled to smaller dumps)",
    )
    parser.add_argument(
        "--bigram-rule",
        choices=BIGRAM_RULES,
        default=d.bigram_rule,
        help="metaclip: MetaCLIP's bigrams, NLTK's base-2 PMI log2(c(ab)N/(c(a)c(b))) >= --min-pmi, "
        "no count filter; ratio: p(ab)/(p(a)p(b)) >= --min-pmi-ratio and >= --min-bigram-count "
        "occurrences (default %(default)s)",
    )
    parser.add_argument(
        "--min-pmi",
        type=float,
        default=d.min_pmi,
        help="metaclip rule: base-2 PMI at English Wikipedia scale (MetaCLIP: 30; lowered by "
        "log2(4.5e9 / tokens) on a smaller dump)",
    )
    parser.add_argument(
        "--min-bigram-count",
        type=int,
        default=d.min_bigram_count,
        help="ratio rule: occurrences at English Wikipedia scale before PMI is trusted (scaled)",
    )
    parser.add_argument(
        "--min-pmi-ratio",
        type=float,
        default=d.min_pmi_ratio,
        help="ratio rule: p(ab)/(p(a)p(b)) at least this; stored as its natural log",
    )
    parser.add_argument(
        "--min-title-views", type=int, default=d.min_title_views, help="with --pageviews (MetaCLIP: 70)"
    )
    parser.add_argument(
        "--min-title-inlinks",
        type=int,
        default=d.min_title_inlinks,
        help="without --pageviews: in-links at English Wikipedia scale (scaled by articles)",
    )
    parser.add_argument("--count-floor", type=int, default=d.count_floor, help="the least a scaled threshold can be")
    parser.add_argument("--workers", type=int, help="concurrent counting tasks (default: the cluster's CPUs)")
    parser.add_argument(
        "--pages-per-task", type=int, default=d.pages_per_task, help="plain dumps: at most this many pages per task"
    )
    parser.add_argument(
        "--task-chars",
        type=int,
        default=d.task_chars,
        help="plain dumps: a task is sent once its pages hold this many characters of wikitext",
    )
    parser.add_argument(
        "--streams-per-task", type=int, default=d.streams_per_task, help="multistream dumps: bz2 streams per task"
    )
    parser.add_argument("--work-dir", help="where partial counts go (default: a temporary folder, removed after)")
    parser.add_argument("--memory-limit", default=d.memory_limit, help="DuckDB memory limit for the reduction")


def config_from_args(args: argparse.Namespace) -> QueryConfig:
    fields = QueryConfig.__dataclass_fields__
    return QueryConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})


def run(args: argparse.Namespace) -> int:
    from wit_builder.queries.build import summary

    config = config_from_args(args)
    result = main(config)
    print(f"\nwrote {result['rows']:,} queries to {config.out} in {result['seconds']:.1f} s")
    print(summary(result["report"], result["rows"]))
    print(
        "admitted: distinct entries a source let in; in list: rows naming it; brought in: rows it added first "
        "(MetaCLIP's totals count these)"
    )
    print(
        f"\n{result['corpus']['articles']:,} articles, {result['corpus']['tokens']:,} tokens counted; "
        f"unigrams from {result['unigram_source']}; titles ranked by {result['title_popularity']['kind']}; "
        f"{sum(result['wordnet_synsets'].values()):,} WordNet synsets"
    )
    print(
        "see docs/queries.md for why these totals differ from MetaCLIP's; "
        f'inspect with: wit sql {config.out} "SELECT * FROM queries LIMIT 10"'
    )
    return 0


def main(config: QueryConfig) -> dict:
    """Count the dump with Ray, reduce with DuckDB, merge the sources and write the list; returns the metadata."""
    import shutil
    import tempfile

    from pipelines import ray_env
    from wit_builder.errors import WitError
    from wit_builder.paths import wiki_sample_path
    from wit_builder.queries import build, counts, titles, wordnet
    from wit_builder.queries.config import REFERENCE_TOKENS, bigram_thresholds

    started = time.time()
    if config.target_size <= 0:
        raise WitError("--target-size must be positive")
    if config.bigram_rule not in BIGRAM_RULES:
        raise WitError(f"--bigram-rule must be one of {', '.join(BIGRAM_RULES)} (got {config.bigram_rule!r})")
    if config.out.startswith("s3://"):
        raise WitError("--out must be a local path (the list is ~10 MB): write it locally, then copy it to S3")
    out_dir = os.path.dirname(os.path.abspath(config.out))
    os.makedirs(out_dir, exist_ok=True)
    dump = config.wiki_dump or str(wiki_sample_path())
    index = config.wiki_index or _find_index(dump)
    # read the small inputs first: a bad pageviews file or WordNet folder fails before the long count
    views = titles.read_pageviews(config.pageviews) if config.pageviews else None
    wordnet_table, synset_counts = wordnet.read_wordnet(config.wordnet_dir)

    timings = {"read_small_inputs": round(time.time() - started, 2)}
    ray = ray_env.init_local(num_cpus=config.workers)
    workers = config.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    work_dir = config.work_dir or tempfile.mkdtemp(prefix="wit-queries-", dir=out_dir)
    try:
        mark = time.time()
        corpus = count_dump(ray, dump, index, work_dir, workers, config)
        timings["count"] = round(time.time() - mark, 2)
        mark = time.time()
        con = counts.connect(work_dir, config.memory_limit)
        reduced = counts.reduce(con)
        corpus.update(
            tokens=reduced.tokens,
            bigrams=reduced.bigram_total,
            articles=reduced.articles,
            distinct_unigrams=reduced.distinct_unigrams,
            distinct_bigrams=reduced.distinct_bigrams,
        )
        thresholds: dict = {
            "bigram_rule": config.bigram_rule,
            "pmi_unit": "log2" if config.bigram_rule == "metaclip" else "ln",
        }

        unigram_source = config.unigram_source
        if unigram_source == "auto":
            unigram_source = "wordfreq" if reduced.tokens < config.auto_min_tokens else "wiki"
        if unigram_source == "wiki":
            thresholds["min_unigram_count"] = config.scaled(config.min_unigram_count, reduced.tokens, REFERENCE_TOKENS)
            unigrams = counts.unigrams_at_least(con, thresholds["min_unigram_count"])
            unigram_stats = {}
        else:
            from wit_builder.queries.wordfreq_source import wordfreq_unigrams

            thresholds["min_unigram_count"] = config.min_unigram_count
            unigrams, unigram_stats = wordfreq_unigrams(config.min_unigram_count)

        thresholds["min_bigram_count"], thresholds["min_pmi"] = bigram_thresholds(config, reduced.tokens)
        bigrams = counts.bigrams_by_pmi(
            con, reduced, thresholds["min_bigram_count"], thresholds["min_pmi"], rule=config.bigram_rule
        )
        title_table, popularity = _titles(con, views, reduced.articles, config, thresholds)
        con.close()
        timings["reduce"] = round(time.time() - mark, 2)
    finally:
        if config.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)

    mark = time.time()
    table, report = build.merge(
        {"unigram": unigrams, "bigram": bigrams, "title": title_table, "wordnet": wordnet_table}, config.target_size
    )
    if table.num_rows == 0:
        raise WitError("no query was admitted by any source: check the inputs and thresholds")
    metadata = {
        "inputs": {
            "wiki_dump": dump,
            "wiki_index": index,
            "layout": "multistream" if index else "single-stream",
            "wordnet_dir": config.wordnet_dir or wordnet.default_dir(),
            "pageviews": config.pageviews,
        },
        "unigram_source": unigram_source,
        "unigram_source_note": _unigram_note(unigram_source, reduced.tokens, config),
        "unigram_source_stats": dict(unigram_stats),
        "thresholds": thresholds,
        "title_popularity": popularity,
        "corpus": corpus,
        "wordnet_synsets": dict(synset_counts),
        "report": report,
        "rows": table.num_rows,
        "target_size": config.target_size,
        "metaclip_totals": build.METACLIP_TOTALS,
        "normal_form": "NFC, whitespace runs -> one space, stripped, case kept, entries with , . ; : ? ! ` dropped",
        "config": config.as_dict(),
        "timings": timings,
    }
    build.write(table, config.out, metadata)
    timings["merge_write"] = round(time.time() - mark, 2)
    metadata["seconds"] = round(time.time() - started, 2)
    return metadata


def _find_index(dump: str) -> str | None:
    """The multistream index beside a `*multistream.xml.bz2` (Wikimedia's naming), when it exists."""
    if "multistream" not in os.path.basename(dump) or not dump.endswith(".xml.bz2"):
        return None
    candidate = dump[: -len(".xml.bz2")] + "-index.txt.bz2"
    from wit_builder import storage

    if storage.is_s3(candidate):
        return candidate if storage.fsspec_s3().exists(candidate[len("s3://") :]) else None
    return candidate if os.path.exists(candidate) else None


def _unigram_note(source: str, tokens: int, config: QueryConfig) -> str:
    if source == "wiki":
        return "unigram counts from the dump"
    return (
        f"the dump has {tokens:,} tokens (< {config.auto_min_tokens:,}) or --unigram-source wordfreq was given: "
        "unigram counts are estimated as wordfreq large_en frequency x 4.5e9 English Wikipedia words"
    )


def _titles(con, views, articles: int, config: QueryConfig, thresholds: dict):
    """(query, popularity) for titles above the threshold, and a description of the popularity used."""
    import pyarrow as pa

    from wit_builder.queries import counts, titles
    from wit_builder.queries.config import REFERENCE_ARTICLES

    inlinks = counts.title_inlinks(con)
    if views is not None:
        view_table, view_stats = views
        con.register("views_table", view_table)
        con.register("inlinks_table", inlinks)
        joined = con.sql(
            "SELECT i.title, coalesce(v.views, 0) AS popularity FROM inlinks_table i "
            "LEFT JOIN views_table v ON v.title = i.title"
        ).to_arrow_table()
        thresholds["min_title_views"] = config.min_title_views
        minimum = config.min_title_views
        popularity = {"kind": "views", "note": f"views summed over {config.pageviews}", "stats": dict(view_stats)}
    else:
        joined = inlinks.rename_columns(["title", "popularity"])
        minimum = config.scaled(config.min_title_inlinks, articles, REFERENCE_ARTICLES)
        thresholds["min_title_inlinks"] = minimum
        popularity = {"kind": "inlinks", "note": PROXY_NOTE}
    rows = [
        (titles.title_query(t), p)
        for t, p in zip(joined["title"].to_pylist(), joined["popularity"].to_pylist())
        if p >= minimum
    ]
    table = pa.table({"query": [q for q, _ in rows], "popularity": pa.array([p for _, p in rows], pa.int64())})
    return table, popularity


def count_dump(ray, dump: str, index: str | None, work_dir: str, workers: int, config: QueryConfig) -> dict:
    """Count every page of the dump with Ray tasks; partial counts land in work_dir as Parquet. Returns page stats."""
    from collections import Counter

    from tqdm import tqdm

    from wit_builder import storage
    from wit_builder.errors import WitError
    from wit_builder.queries import counts, wikipedia

    stats: Counter = Counter()
    pending: list = []
    part = 0

    def collect(block: bool) -> None:
        nonlocal part
        while pending and (block or len(pending) >= workers):
            done, _ = ray.wait(pending, num_returns=1)
            pending.remove(done[0])
            try:
                tables, task_stats = ray.get(done[0])
            except ray.exceptions.RayTaskError as err:  # a worker's WitError reaches the user as itself
                if isinstance(err.cause, WitError):
                    raise err.cause from None
                raise
            counts.write_tables(tables, work_dir, part)
            part += 1
            stats.update(task_stats)
            if not block:
                return

    with wikipedia.open_binary(dump) as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        progress = tqdm(total=size, unit="B", unit_scale=True, desc="counting dump", file=sys.stderr, disable=None)
        if index:
            count_range = ray.remote(num_cpus=1)(counts.count_byte_range)
            if dump.startswith("s3://"):  # workers open the dump themselves: they need the endpoint and credentials
                count_range = count_range.options(runtime_env={"env_vars": storage.s3_env_vars()})
            with wikipedia.open_binary(index) as index_handle:
                offsets = wikipedia.read_index(index_handle, index)
            header = wikipedia.read_header(handle, dump)
            namespaces = ray.put(header["namespaces"])
            for start, end in wikipedia.stream_ranges(offsets, size, config.streams_per_task):
                collect(block=False)
                pending.append(count_range.remote(dump, start, end, namespaces))
                progress.update(end - start)
            stats["compressed_bytes_header"] = offsets[0]
        else:
            count_batch = ray.remote(num_cpus=1)(counts.count_batch)
            header: dict = {}
            batch: list = []
            batch_chars = 0
            position = 0
            read_stats: Counter = Counter()
            for page in wikipedia.iter_pages(handle, dump, read_stats, header):
                batch.append(page)
                batch_chars += len(page.text)
                if len(batch) >= config.pages_per_task or batch_chars >= config.task_chars:
                    collect(block=False)
                    pending.append(count_batch.remote(batch, header.get("namespaces")))
                    batch, batch_chars = [], 0
                    progress.update(handle.tell() - position)
                    position = handle.tell()
            if batch:
                pending.append(count_batch.remote(batch, header.get("namespaces")))
            progress.update(size - position)
            stats.update(read_stats)
            stats["compressed_bytes"] = size
        collect(block=True)
        progress.close()
    stats["compressed_bytes_total"] = size
    stats["tasks"] = part
    return dict(stats)


if __name__ == "__main__":
    from pipelines.cli import run_script

    sys.exit(run_script(sys.modules[__name__]))
