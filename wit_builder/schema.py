"""The Arrow schema of every table a build writes or reads: the on-disk contract, written once.

Readers and writers import these (the pool reader, the curation outputs, the final accounting, the layout in
wit_builder/layout.py) and tests/wit_builder/test_contract.py checks a real build's files against them.

pool        the candidate pairs; `wit web build` writes DIR/pool.parquet, any pool a user brings is read into READ_SCHEMA
curated     OUT/curated/*.parquet: the pairs curation selected for download, with their queries and language
accounting  OUT/accounting/*.parquet: one row per pool row, its status and reason, and its download outcome
query_counts OUT/query_counts.parquet: per query of the query list, how many pairs matched and were kept
samples     OUT/shards/NNNNN.parquet: one row per attempted download (img2dataset's columns plus ours); the shard
            contract (tar members, keys, sizes.json) is in wit_builder/download/shards.py
"""

from __future__ import annotations

import pyarrow as pa

POOL_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),  # unique, stable id of the row: every later table refers to it
        pa.field("url", pa.string()),  # where the image is said to be
        pa.field("text", pa.string()),  # the candidate caption, as found
        pa.field("source", pa.string()),  # where the pair came from (e.g. openclipart/title, tuxpaint/de)
    ]
)
POOL_REQUIRED = ("uid", "url", "text")

# A pool row as curation's first stage reads it: `reason` is null while the row is alive (wit_builder/ledger.py).
READ_SCHEMA = pa.schema([*POOL_SCHEMA, pa.field("reason", pa.string())])

CURATED_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string()),
        pa.field("url", pa.string()),
        pa.field("text", pa.string()),  # normalised, cut to CurateConfig.max_chars for storage
        pa.field("source", pa.string()),
        pa.field("lang", pa.string()),  # lid.176's top language
        pa.field("lang_score", pa.float32()),
        pa.field("queries", pa.list_(pa.string())),  # every query the text contains
        pa.field("attributed_query", pa.string()),  # the one query the pair counts against when balancing
    ]
)

# Curation's columns of the accounting, then the download's (null until the pair's shard finished).
CURATION_ACCOUNTING_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string()),
        pa.field("status", pa.string()),  # ledger.STATUSES: selected | kept | filtered | failed
        pa.field("reason", pa.string()),  # null for selected and kept; ledger.REASONS otherwise
        pa.field("lang", pa.string()),
        pa.field("lang_score", pa.float32()),
        pa.field("n_queries", pa.int32()),
        pa.field("attributed_query", pa.string()),
    ]
)
DOWNLOAD_ACCOUNTING_FIELDS = (
    pa.field("error", pa.string()),  # the downloader's error of a failed pair
    pa.field("stage", pa.string()),  # img2dataset's status: success | failed_to_download | ...
    pa.field("shard", pa.string()),  # NNNNN.tar the pair was downloaded in
    pa.field("key", pa.string()),  # its sample key in that shard (kept pairs)
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("sha256", pa.string()),  # of the stored image bytes
)
ACCOUNTING_SCHEMA = pa.schema([*CURATION_ACCOUNTING_SCHEMA, *DOWNLOAD_ACCOUNTING_FIELDS])
DOWNLOAD_COLUMNS = tuple(f.name for f in DOWNLOAD_ACCOUNTING_FIELDS)

QUERY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.int32()),  # position in the query list as loaded (after skipping repeats)
        pa.field("query", pa.string()),
        pa.field("matched", pa.int64()),  # deduplicated pairs containing it (balancing's input)
        pa.field("attributed", pa.int64()),  # pairs attributed to it
        pa.field("kept", pa.int64()),  # selected pairs containing it
        pa.field("kept_attributed", pa.int64()),  # selected pairs attributed to it: never above the paper's cap
    ]
)

# The columns every shard's Parquet holds (img2dataset's, plus the carried curation columns); more may follow.
SAMPLE_COLUMNS = (
    "uid",
    "url",
    "caption",
    "key",
    "status",
    "error_message",
    "width",
    "height",
    "original_width",
    "original_height",
    "sha256",
    "source_sha256",
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns, in its order and types (missing ones as nulls): what a writer stores."""
    columns = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema([f.with_nullable(True) for f in schema]))
