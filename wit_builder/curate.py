"""Curation on one table: read -> normalise -> language -> match -> dedup -> count -> balance, and its outputs.

The pure path (`curate`) composes the stage functions in one process; pipelines/build_wit.py runs the very same
functions on Ray Data and must give identical outputs (tests/pipelines/test_build_wit.py). The outputs are:
accounting (one row per pool row: uid, status, reason, lang, lang_score, n_queries, attributed), curated (the kept
pairs with their queries, language and attribution), and the per-query table (matched, attributed, kept).
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder import ledger, storage
from wit_builder.balance.cap import add_attribution, apply_cap
from wit_builder.balance.dedup import mark_duplicates
from wit_builder.balance.metaclip import apply_metaclip
from wit_builder.config import CurateConfig
from wit_builder.errors import WitError
from wit_builder.match.counts import match_batch, partial_counts

log = logging.getLogger(__name__)

CURATED_COLUMNS = ("uid", "url", "text", "source", "lang", "lang_score", "queries", "attributed_query")
ACCOUNTING_COLUMNS = ("uid", "status", "reason", "lang", "lang_score", "n_queries", "attributed_query")


def load_queries(path: str) -> tuple[list[str], dict[str, int]]:
    """The query list from `wit queries` Parquet (column `query`) or a text file (one query per line).

    Each entry is put in the query normal form (NFC, whitespace runs -> one space, stripped); null/empty entries and
    repeats are skipped, counted and logged. Returns (queries in first-seen order, {'read', 'empty', 'duplicate'})."""
    fs, inner = storage.filesystem(path)
    try:
        with fs.open_input_file(inner) as handle:
            data = handle.read()
    except FileNotFoundError as err:
        raise WitError(f"query list {path} does not exist: run `wit queries --out q.parquet` or give a text file") from err
    if path.endswith(".parquet"):
        import io

        table = pq.read_table(io.BytesIO(data))
        if "query" not in table.column_names:
            raise WitError(f"{path} has no 'query' column (it has: {', '.join(table.column_names)}): "
                           "give the Parquet written by `wit queries`")
        raw = table["query"].cast(pa.string()).to_pylist()
    else:
        try:
            raw = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise WitError(f"query list {path} is not UTF-8 text (byte {err.start}): re-encode it") from err
    seen: dict[str, None] = {}
    report = {"read": len(raw), "empty": 0, "duplicate": 0}
    for entry in raw:
        query = " ".join(unicodedata.normalize("NFC", entry).split()) if entry else ""
        if not query:
            report["empty"] += 1
        elif query in seen:
            report["duplicate"] += 1
        else:
            seen[query] = None
    if report["empty"] or report["duplicate"]:
        log.warning("query list %s: skipped %d empty and %d duplicate entries", path, report["empty"],
                    report["duplicate"])
    if not seen:
        raise WitError(f"query list {path} holds no queries")
    return list(seen), report


@dataclass
class CurateResult:
    table: pa.Table                       # every pool row with its final reason and the stage columns
    matched: np.ndarray                   # per query: deduplicated alive pairs containing it (balancing's input)
    timings: dict[str, float] = field(default_factory=dict)


def curate(pool: pa.Table, queries: list[str], cfg: CurateConfig = CurateConfig(), lid=None,
           automaton=None) -> CurateResult:
    """All curation stages on one table, in this process."""
    from wit_builder.match.automaton import TokenAutomaton
    from wit_builder.pool.langid import LanguageId
    from wit_builder.pool.normalize import normalize_batch

    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        return out

    lid = lid or timed("langid", LanguageId)
    automaton = automaton or timed("match", TokenAutomaton, queries)
    table = timed("normalise", normalize_batch, pool, cfg)
    table = timed("langid", lid, table, cfg)
    table = timed("match", match_batch, table, automaton)
    table = timed("dedup", mark_duplicates, table, cfg.seed)
    matched = timed("count", lambda: partial_counts(table["query_ids"], len(queries), pc.is_null(table["reason"])))
    table = timed("balance", balance, table, matched, cfg)
    return CurateResult(table, matched, timings)


def balance(table: pa.Table, matched: np.ndarray, cfg: CurateConfig) -> pa.Table:
    """Attribute every alive pair to its rarest query; then the paper's cap, or MetaCLIP's sampling."""
    table = add_attribution(table, matched)
    if cfg.balance == "paper":
        return apply_cap(table, cfg.cap, cfg.seed)
    return apply_metaclip(table, matched, cfg.cap, cfg.seed)


def accounting_table(table: pa.Table, queries: list[str]) -> pa.Table:
    """One row per pool row: uid, status, reason, and what curation learnt about it."""
    attributed = table["attributed"] if "attributed" in table.column_names else pa.nulls(table.num_rows, pa.int32())
    out = pa.table({
        "uid": table["uid"],
        "status": ledger.status_of(table["reason"]),
        "reason": table["reason"],
        "lang": table["lang"],
        "lang_score": table["lang_score"],
        "n_queries": pc.list_value_length(table["query_ids"]).cast(pa.int32()),
        "attributed_query": _query_names(attributed, queries),
    })
    return out


def curated_table(table: pa.Table, queries: list[str]) -> pa.Table:
    """The kept pairs: what the download stage reads (url, text, uid) plus their queries, language and attribution."""
    kept = table.filter(pc.is_null(table["reason"]))
    names = pa.array(queries, pa.string())
    ids = kept["query_ids"].combine_chunks() if isinstance(kept["query_ids"], pa.ChunkedArray) else kept["query_ids"]
    if isinstance(ids, pa.ChunkedArray):
        ids = pa.array([], pa.list_(pa.int32()))
    query_lists = pa.ListArray.from_arrays(ids.offsets, names.take(ids.values)) if len(ids) else \
        pa.array([], pa.list_(pa.string()))
    return pa.table({
        "uid": kept["uid"], "url": kept["url"], "text": kept["text"], "source": kept["source"],
        "lang": kept["lang"], "lang_score": kept["lang_score"], "queries": query_lists,
        "attributed_query": _query_names(kept["attributed"], queries),
    })


def query_counts(table: pa.Table, n: int) -> np.ndarray:
    """Per-query counts of one table (any batch): [kept | attributed | kept_attributed], 3 x n int64; sums add up."""
    kept_mask = pc.is_null(table["reason"])
    kept = partial_counts(table["query_ids"], n, kept_mask)
    attributed = np.asarray(table["attributed"].to_numpy(), np.int64) if table.num_rows else np.zeros(0, np.int64)
    kept_np = np.asarray(kept_mask.to_numpy(zero_copy_only=False), bool) if table.num_rows else np.zeros(0, bool)
    attr = np.bincount(attributed[attributed >= 0], minlength=n)
    kept_attr = np.bincount(attributed[(attributed >= 0) & kept_np], minlength=n)
    return np.concatenate([kept, attr, kept_attr]).astype(np.int64)


def queries_table(queries: list[str], matched: np.ndarray, table: pa.Table | None = None,
                  counts: np.ndarray | None = None) -> pa.Table:
    """Per query: matched (deduplicated pairs containing it), attributed, kept (kept pairs containing it),
    kept_attributed (kept pairs attributed to it: never above the cap in paper mode). Give the curated `table`, or
    the summed `counts` of query_counts over its batches."""
    n = len(queries)
    counts = query_counts(table, n) if counts is None else counts
    kept, attributed, kept_attr = counts[:n], counts[n:2 * n], counts[2 * n:]
    return pa.table({
        "query_id": pa.array(np.arange(n, dtype=np.int32)),
        "query": pa.array(queries, pa.string()),
        "matched": pa.array(matched.astype(np.int64)),
        "attributed": pa.array(attributed),
        "kept": pa.array(kept),
        "kept_attributed": pa.array(kept_attr),
    })


def _query_names(ids, queries: list[str]) -> pa.Array:
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = pc.if_else(pc.less(ids, 0), pa.scalar(None, ids.type), ids)
    return pa.array(queries, pa.string()).take(ids)


def write_parquet(table: pa.Table, uri: str) -> None:
    """Write one Parquet file through the pyarrow filesystem that storage resolves (local or s3://)."""
    fs, path = storage.filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    pq.write_table(table, path, filesystem=fs)


def distribution_head(qtable: pa.Table, k: int = 10) -> str:
    """The k most-matched queries with matched / kept_attributed / kept, as a small text table."""
    order = pc.sort_indices(qtable, sort_keys=[("matched", "descending"), ("query_id", "ascending")])
    top = qtable.take(order.slice(0, k)).to_pylist()
    width = max([len(r["query"]) for r in top] + [5])
    lines = [f"  {'query':<{width}}  {'matched':>9}  {'attributed kept':>15}  {'kept (any)':>10}"]
    lines += [f"  {r['query']:<{width}}  {r['matched']:>9,}  {r['kept_attributed']:>15,}  {r['kept']:>10,}" for r in top]
    return "\n".join(lines)


def funnel_text(reasons: dict[str, int]) -> str:
    steps = ledger.funnel(reasons)
    return " -> ".join(f"{name} {n:,}" for name, n in steps)
