"""Curation: normalise -> language id -> match -> dedup -> count -> attribute -> balance, described once, and
its outputs.

`curation_stages` lists the steps in order, each a plain function over a pyarrow Table and how it may run (per
batch, as an actor, grouped by a key, as a sum). Two executors run that one list: `run_stages` here (the pure path,
`wit build --local`) and `pipelines._ray.run_stages` on Ray Data; tests/pipelines/test_build_wit.py keeps their outputs
equal. The outputs (schemas in wit_builder/schema.py): accounting (one row per pool row), curated (the selected
pairs with their queries, language and attribution), and the per-query counts (matched, attributed, kept).
"""

from __future__ import annotations

import functools
import logging
import time
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder import layout, ledger, storage
from wit_builder.balance.cap import add_attribution, apply_cap
from wit_builder.balance.dedup import mark_duplicates
from wit_builder.balance.metaclip import apply_metaclip
from wit_builder.config import CurateConfig
from wit_builder.errors import WitError
from wit_builder.match.automaton import TokenAutomaton
from wit_builder.match.counts import match_batch, partial_counts
from wit_builder.pool.langid import LanguageId, identify_batch
from wit_builder.pool.normalize import cut_stored_text, normalize_batch
from wit_builder.schema import ACCOUNTING_SCHEMA, CURATED_SCHEMA, QUERY_COUNTS_SCHEMA, READ_SCHEMA
from wit_builder.schema import conform as schema_conform

log = logging.getLogger(__name__)


def load_queries(path: str) -> tuple[list[str], dict[str, int]]:
    """The query list from `wit queries` Parquet (column `query`) or a text file (one query per line).

    Each entry is put in the query normal form (NFC, whitespace runs -> one space, stripped); null/empty entries and
    repeats are skipped, counted and logged. Returns (queries in first-seen order, {'read', 'empty', 'duplicate'})."""
    fs, inner = storage.filesystem(path)
    try:
        with fs.open_input_file(inner) as handle:
            data = handle.read()
    except FileNotFoundError as err:
        raise WitError(
            f"query list {path} does not exist: run `wit queries --out q.parquet` or give a text file"
        ) from err
    if path.endswith(".parquet"):
        import io

        table = pq.read_table(io.BytesIO(data))
        if "query" not in table.column_names:
            raise WitError(
                f"{path} has no 'query' column (it has: {', '.join(table.column_names)}): "
                "give the Parquet written by `wit queries`"
            )
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
        log.warning(
            "query list %s: skipped %d empty and %d duplicate entries", path, report["empty"], report["duplicate"]
        )
    if not seen:
        raise WitError(f"query list {path} holds no queries")
    return list(seen), report


@dataclass(frozen=True)
class Stage:
    """One curation step: a plain function over a pyarrow Table, and how an executor may run it.

    kind  batch: fn(table, **needs) -> table, on any batch of rows
          actor: fn() -> callable(table) -> table; fn runs once per worker (it loads a model, builds an automaton)
          group: fn(table, **needs) -> table, on tables that hold whole groups of key(table) (ints, stable across
                 processes): one url, one attributed query
          sum:   fn(table, **needs) -> int64 array of `length`, summed over batches into the value `output`
    needs      names of earlier `sum` outputs passed to fn as keyword arguments
    adds       the columns the stage appends (so an executor knows the schema without running it)
    alive_only the stage changes nothing for rows already dropped: an executor may route them around it (they get
               nulls in the columns it adds); once a stage is alive_only, every later one must be too
    """

    name: str
    kind: str
    fn: Callable
    key: Callable | None = None
    needs: tuple[str, ...] = ()
    output: str | None = None
    length: int = 0
    adds: tuple[pa.Field, ...] = ()
    alive_only: bool = False


def curation_stages(queries: list[str], cfg: CurateConfig = CurateConfig(), lid=None, automaton=None) -> list[Stage]:
    """The curation DAG, described once: normalise -> language id -> match -> dedup -> count -> attribute -> balance.
    `lid` / `automaton`: already loaded ones to reuse (tests, benchmarks); else each worker loads its own."""
    n = len(queries)
    if cfg.balance == "paper":
        balance = Stage(
            "balance",
            "group",
            functools.partial(apply_cap, cap=cfg.cap, seed=cfg.seed),
            key=attributed_partition,
            alive_only=True,
        )
    else:
        balance = Stage(
            "balance",
            "batch",
            functools.partial(_metaclip, t=cfg.cap, seed=cfg.seed),
            needs=("matched",),
            alive_only=True,
        )
    return [
        Stage("normalise", "batch", functools.partial(normalize_batch, cfg=cfg)),
        Stage(
            "langid",
            "actor",
            functools.partial(_language_stage, lid, cfg),
            adds=(pa.field("lang", pa.string()), pa.field("lang_score", pa.float32())),
        ),
        Stage(
            "match",
            "actor",
            functools.partial(_match_stage, automaton, queries),
            adds=(pa.field("query_ids", pa.list_(pa.int32())),),
        ),
        Stage("dedup", "group", functools.partial(mark_duplicates, seed=cfg.seed), key=url_partition, alive_only=True),
        Stage("count", "sum", functools.partial(_alive_counts, n=n), output="matched", length=n, alive_only=True),
        Stage(
            "attribute",
            "batch",
            _attribute,
            needs=("matched",),
            adds=(pa.field("attributed", pa.int32()),),
            alive_only=True,
        ),
        balance,
    ]


def stages_schema(stages: list[Stage]) -> pa.Schema:
    """The schema of a table after all `stages`: the pool as read, then each stage's added columns."""
    return pa.schema([*READ_SCHEMA, *(f for s in stages for f in s.adds)])


def _language_stage(lid, cfg: CurateConfig):
    return functools.partial(identify_batch, lid=lid or LanguageId(), cfg=cfg)


def _match_stage(automaton, queries: list[str]):
    return functools.partial(match_batch, automaton=automaton or TokenAutomaton(queries))


def _alive_counts(table: pa.Table, n: int) -> np.ndarray:
    return partial_counts(table["query_ids"], n, pc.is_null(table["reason"]))


def _attribute(table: pa.Table, matched: np.ndarray) -> pa.Table:
    return add_attribution(table, matched)


def _metaclip(table: pa.Table, matched: np.ndarray, t: int, seed: int) -> pa.Table:
    return apply_metaclip(table, matched, t, seed)


def url_partition(table: pa.Table) -> np.ndarray:
    """A stable group number per url (crc32: the same in every worker process, unlike Python's str hash)."""
    return np.fromiter((zlib.crc32(u.encode()) for u in table["url"].to_pylist()), dtype=np.int64, count=table.num_rows)


def attributed_partition(table: pa.Table) -> np.ndarray:
    return np.asarray(table["attributed"].fill_null(-1).to_numpy(), np.int64)


@dataclass
class CurateResult:
    table: pa.Table  # every pool row with its final reason and the stage columns
    matched: np.ndarray  # per query: deduplicated alive pairs containing it (balancing's input)
    timings: dict[str, float] = field(default_factory=dict)


def run_stages(table: pa.Table, stages: list[Stage]) -> tuple[pa.Table, dict, dict[str, float]]:
    """The local executor: every stage on the whole table in this process, with the same routing of dropped rows
    around alive_only stages as the Ray executor (pipelines/_ray.py). Returns (table, sum outputs, timings)."""
    values: dict = {}
    timings: dict[str, float] = {}
    dead = None
    for stage in stages:
        t0 = time.perf_counter()
        if stage.alive_only and dead is None:
            alive = pc.is_null(table["reason"])
            dead, table = table.filter(pc.invert(alive)), table.filter(alive)
        needs = {name: values[name] for name in stage.needs}
        if stage.kind == "actor":
            table = stage.fn()(table)
        elif stage.kind == "sum":
            values[stage.output] = np.asarray(stage.fn(table, **needs), np.int64)
        else:
            table = stage.fn(table, **needs)
        timings[stage.name] = time.perf_counter() - t0
    if dead is not None:
        schema = stages_schema(stages)
        table = pa.concat_tables([schema_conform(dead, schema), schema_conform(table, schema)])
    return table, values, timings


def curate(
    pool: pa.Table, queries: list[str], cfg: CurateConfig = CurateConfig(), lid=None, automaton=None
) -> CurateResult:
    """All curation stages on one table, in this process."""
    table, values, timings = run_stages(pool, curation_stages(queries, cfg, lid, automaton))
    return CurateResult(table, values["matched"], timings)


def accounting_table(table: pa.Table, queries: list[str]) -> pa.Table:
    """One row per pool row: uid, status, reason, and what curation learnt about it (download columns null)."""
    return schema_conform(
        pa.table(
            {
                "uid": table["uid"],
                "status": ledger.status_of(table["reason"]),
                "reason": table["reason"],
                "lang": table["lang"],
                "lang_score": table["lang_score"],
                "n_queries": pc.list_value_length(table["query_ids"]).cast(pa.int32()),
                "attributed_query": _query_names(table["attributed"], queries),
            }
        ),
        ACCOUNTING_SCHEMA,
    )


def curated_table(table: pa.Table, queries: list[str], max_chars: int = CurateConfig.max_chars) -> pa.Table:
    """The selected pairs: what the download stage reads (uid, url, text) plus their queries, language and
    attribution. Texts longer than `max_chars` are cut here, for storage only (matching saw the whole text)."""
    kept = table.filter(pc.is_null(table["reason"]))
    ids = kept["query_ids"].combine_chunks() if kept.num_rows else pa.array([], pa.list_(pa.int32()))
    names = pa.array(queries, pa.string())
    query_lists = pa.ListArray.from_arrays(ids.offsets, names.take(ids.values))
    text, _ = cut_stored_text(kept["text"], max_chars)
    return schema_conform(
        pa.table(
            {
                "uid": kept["uid"],
                "url": kept["url"],
                "text": text,
                "source": kept["source"],
                "lang": kept["lang"],
                "lang_score": kept["lang_score"],
                "queries": query_lists,
                "attributed_query": _query_names(kept["attributed"], queries),
            }
        ),
        CURATED_SCHEMA,
    )


def query_counts(table: pa.Table, n: int, max_chars: int = CurateConfig.max_chars) -> np.ndarray:
    """Per-query counts of one table (any batch): [kept | attributed | kept_attributed] plus, last, the number of
    selected texts longer than `max_chars` (cut for storage); 3 x n + 1 int64 whose sums over batches add up."""
    kept_mask = pc.is_null(table["reason"])
    long_texts = pc.sum(pc.and_(kept_mask, pc.greater(pc.utf8_length(table["text"]), max_chars))).as_py() or 0
    kept = partial_counts(table["query_ids"], n, kept_mask)
    attributed = np.asarray(table["attributed"].fill_null(-1).to_numpy(), np.int64)
    kept_np = np.asarray(kept_mask.to_numpy(zero_copy_only=False), bool)
    attr = np.bincount(attributed[attributed >= 0], minlength=n)
    kept_attr = np.bincount(attributed[(attributed >= 0) & kept_np], minlength=n)
    return np.concatenate([kept, attr, kept_attr, [long_texts]]).astype(np.int64)


def query_counts_table(queries: list[str], matched: np.ndarray, counts: np.ndarray) -> pa.Table:
    """Per query: matched (deduplicated pairs containing it), attributed, kept (selected pairs containing it),
    kept_attributed (selected pairs attributed to it: never above the cap in paper mode), from `query_counts` of the
    curated table (summed over its batches)."""
    n = len(queries)
    return schema_conform(
        pa.table(
            {
                "query_id": pa.array(np.arange(n, dtype=np.int32)),
                "query": pa.array(queries, pa.string()),
                "matched": pa.array(matched.astype(np.int64)),
                "attributed": pa.array(counts[n : 2 * n]),
                "kept": pa.array(counts[:n]),
                "kept_attributed": pa.array(counts[2 * n : 3 * n]),
            }
        ),
        QUERY_COUNTS_SCHEMA,
    )


def _query_names(ids, queries: list[str]) -> pa.Array:
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = pc.if_else(pc.less(ids, 0), pa.scalar(None, ids.type), ids)
    return pa.array(queries, pa.string()).take(ids)


def curate_local(folder, files: list[str], queries: list[str], cfg: CurateConfig) -> dict:
    """The pure path of `wit build --local`: read every pool file, run the stages in this process, write the
    outputs into the BuildFolder `folder`. Returns {rows_in, timings, workers}."""
    from wit_builder.pool.read import read_pool_file

    t0 = time.perf_counter()
    pool = pa.concat_tables([read_pool_file(f, cfg) for f in files])
    if pool.num_rows == 0:
        raise WitError(f"the pool has no rows ({len(files)} file(s), all empty): check --pool")
    read_s = time.perf_counter() - t0
    result = curate(pool, queries, cfg)
    t0 = time.perf_counter()
    folder.write_table(accounting_table(result.table, queries), folder.part(layout.ACCOUNTING), ACCOUNTING_SCHEMA)
    folder.write_table(
        curated_table(result.table, queries, cfg.max_chars),
        folder.part(layout.CURATED),
        CURATED_SCHEMA,
    )
    counts = query_counts(result.table, len(queries), cfg.max_chars)
    folder.write_table(query_counts_table(queries, result.matched, counts), folder.query_counts, QUERY_COUNTS_SCHEMA)
    timings = {"read": read_s, **result.timings, "write": time.perf_counter() - t0}
    return {"rows_in": pool.num_rows, "timings": timings, "workers": 1, "texts_cut": int(counts[-1])}
