"""Column names and Arrow schemas at every stage boundary: the on-disk contract, written once and imported by tests.

pool (candidate pairs, `wit web build` writes DIR/pool.parquet; any pool a user brings is read into this shape):
    uid     string  unique, stable id of the row (the key every later stage's accounting refers to)
    url     string  where the image is said to be (http(s) for real pools; anything for bad input)
    text    string  the candidate caption, as found (may be empty, whitespace, mojibake, very long)
    source  string  where the pair came from (e.g. openclipart/title, tuxpaint/de, emoji/name)
"""

from __future__ import annotations

import pyarrow as pa

POOL_SCHEMA = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
    ]
)
POOL_REQUIRED = ("uid", "url", "text")
