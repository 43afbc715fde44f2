"""One `wit build --out OUT` folder, local or s3://: every path in it, the schema of every table, and its readers.

    OUT/manifest.json           the build's settings, inputs, counts, timings; `finished_stage` = the last stage
                                that finished (curate or download)
    OUT/accounting/*.parquet    one row per pool row (schema.ACCOUNTING_SCHEMA)
    OUT/curated/*.parquet       the pairs selected for download (schema.CURATED_SCHEMA)
    OUT/query_counts.parquet    per query: matched, attributed, kept (schema.QUERY_COUNTS_SCHEMA)
    OUT/shards/                 WebDataset shards (the contract: wit_builder/download/shards.py): NNNNN.tar,
                                NNNNN.parquet (schema.SAMPLE_COLUMNS), NNNNN_stats.json (a finished shard), sizes.json

Everything that reads or writes a build folder goes through `BuildFolder`: the build itself, `wit sql` (catalog.py),
and the trainer, evaluation and overlap report, which read `shard_urls()`, `read_sizes()`, `read_samples()` and
`read_accounting()`. Readers see only finished shards, so a folder whose build stopped at any point stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from wit_builder import schema, storage
from wit_builder.download import shards
from wit_builder.errors import WitError

MANIFEST = "manifest.json"
ACCOUNTING = "accounting"
CURATED = "curated"
QUERY_COUNTS = "query_counts.parquet"
SHARDS = "shards"


@dataclass(frozen=True)
class BuildFolder:
    """The folder `root` (a local path or an s3:// URI, no trailing slash)."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", self.root.rstrip("/"))

    def path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    @property
    def manifest(self) -> str:
        return self.path(MANIFEST)

    @property
    def accounting(self) -> str:
        return self.path(ACCOUNTING)

    @property
    def curated(self) -> str:
        return self.path(CURATED)

    def part(self, table: str) -> str:
        """The single Parquet file of a table folder (accounting, curated) that a one-process writer uses."""
        return self.path(table, "part-00000.parquet")

    @property
    def query_counts(self) -> str:
        return self.path(QUERY_COUNTS)

    @property
    def shards(self) -> str:
        return self.path(SHARDS)

    # --- the manifest
    def read_manifest(self) -> dict | None:
        return storage.read_json(self.manifest) if storage.exists(self.manifest) else None

    def write_manifest(self, manifest: dict) -> None:
        storage.write_json(self.manifest, manifest)

    def finished_stage(self) -> str | None:
        """The last stage that finished here (curate or download), None for a folder no stage finished in."""
        manifest = self.read_manifest()
        return manifest.get("finished_stage") if manifest else None

    # --- curation's tables
    def has_curation(self) -> bool:
        return bool(storage.listdir(self.accounting, ".parquet")) and bool(storage.listdir(self.curated, ".parquet"))

    def read_curated(self) -> pa.Table:
        """Every selected pair, in uid order (a stable order: a rerun assigns the same pairs to the same shards)."""
        return _read_folder(self.curated, schema.CURATED_SCHEMA).sort_by("uid")

    def read_accounting(self) -> pa.Table:
        return _read_folder(self.accounting, schema.ACCOUNTING_SCHEMA)

    def read_query_counts(self) -> pa.Table:
        fs, path = storage.filesystem(self.query_counts)
        return pq.read_table(path, filesystem=fs)

    def write_table(self, table: pa.Table, uri: str, contract: pa.Schema) -> None:
        """Write one Parquet file of this folder in its table's schema (local or s3://)."""
        fs, path = storage.filesystem(uri)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.create_dir(parent, recursive=True)
        pq.write_table(schema.conform(table, contract), path, filesystem=fs)

    def replace_accounting(self, table: pa.Table) -> None:
        """Swap the accounting for one file holding `table`: written beside the old files first (a name no reader
        reads), then the old files go and it takes their place, so an interruption never leaves the folder empty."""
        tmp = self.path(ACCOUNTING, "final.parquet.tmp")
        self.write_table(table, tmp, schema.ACCOUNTING_SCHEMA)
        fs, tmp_path = storage.filesystem(tmp)
        for uri in storage.listdir(self.accounting, ".parquet"):
            storage.remove(uri)
        _, final = storage.filesystem(self.part(ACCOUNTING))
        fs.move(tmp_path, final)

    def clear(self, with_shards: bool = False) -> None:
        """Remove the curate stage's outputs (and the shards too with `with_shards`, for --force)."""
        for sub in (self.accounting, self.curated, *((self.shards,) if with_shards else ())):
            fs, path = storage.filesystem(sub)
            if fs.get_file_info(path).type == pafs.FileType.Directory:
                fs.delete_dir_contents(path)
        storage.remove(self.query_counts)
        storage.remove(self.manifest)

    # --- the shards (finished ones only)
    def finished_shards(self) -> list[str]:
        """NNNNN names of the shards whose download finished (NNNNN_stats.json is written last)."""
        return shards.shard_names(self.shards)

    def unfinished_shards(self) -> list[str]:
        """NNNNN names of shards that were started but did not finish (a stopped or running build)."""
        started = {p.rsplit("/", 1)[-1].split(".", 1)[0] for p in storage.listdir(self.shards)}
        return sorted(n for n in started - set(self.finished_shards()) if n.isdigit())

    def sample_tables(self) -> list[str]:
        """The NNNNN.parquet files of the finished shards."""
        return [self.path(SHARDS, f"{name}.parquet") for name in self.finished_shards()]

    def shard_urls(self) -> list[str]:
        """The NNNNN.tar paths/URIs of the finished shards, in order: what a WebDataset reader streams."""
        return [self.path(SHARDS, f"{name}.tar") for name in self.finished_shards()]

    def read_sizes(self) -> dict[str, int]:
        """{"NNNNN.tar": samples} of the finished shards (sizes.json when present, else from their Parquet)."""
        sizes = self.path(SHARDS, shards.SIZES_FILE)
        return storage.read_json(sizes) if storage.exists(sizes) else shards.shard_sizes(self.shards)

    def read_samples(self) -> pa.Table:
        """One row per attempted download of the finished shards (kept and failed), img2dataset's columns."""
        parts = []
        for uri in self.sample_tables():
            fs, path = storage.filesystem(uri)
            parts.append(pq.read_table(path, filesystem=fs))
        if not parts:
            return pa.table({name: pa.array([], pa.string()) for name in schema.SAMPLE_COLUMNS})
        return pa.concat_tables(parts, promote_options="permissive")


def _read_folder(uri: str, contract: pa.Schema) -> pa.Table:
    """Every Parquet file directly under `uri`, as one table in the `contract` schema (empty when there is none)."""
    parts = []
    for file in storage.listdir(uri, ".parquet"):
        fs, path = storage.filesystem(file)
        try:
            parts.append(schema.conform(pq.read_table(path, filesystem=fs), contract))
        except pa.ArrowInvalid as err:
            raise WitError(f"{file} is not a readable Parquet file ({err}): rerun the build with --force") from err
    return pa.concat_tables(parts) if parts else schema.conform(contract.empty_table(), contract)
