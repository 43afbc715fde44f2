"""wit_builder: the pure library that builds a WIT-like corpus. Functions on Arrow tables; no Ray, no global state.

Terminology (one line per role; the README's data-flow section mirrors it):
- web: the embedded demo "web" (real clip art, Tux Paint stamps, emoji) served on loopback, with its candidate pool.
- pool: candidate (url, text) pairs, one row per pair, each with a stable `uid`.
- catalog: DuckDB views over an output folder's Parquet files, for `wit sql`.
- paths / storage: where installed data lives; local or s3:// URIs.
"""
