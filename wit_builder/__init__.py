"""wit_builder: the pure library that builds a WIT-like corpus. Functions on Arrow tables; no Ray, no global state.

Terminology (one line per role; the README's data-flow section mirrors it):
- web: the embedded demo "web" (real clip art, Tux Paint stamps, emoji) served on loopback, with its candidate pool.
- pool: candidate (url, text) pairs, one row per pair, each with a stable `uid`.
- curate: the curation stages, described once, and their local executor; build: the rules of `wit build` (resume,
  invariants, manifest) around curation and the download.
- layout / schema: the build folder's paths, tables and readers (the contract the trainer and evaluation read).
- ledger / materialise: every pool row's status and reason, and the merge of curation and download accounting.
- catalog: DuckDB views over an output folder's Parquet files, for `wit sql`.
- paths / storage: where installed data lives; local or s3:// URIs.
"""
