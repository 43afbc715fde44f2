"""Typed, frozen configurations whose defaults come from the CLIP paper (Radford et al. 2021) or say why they were
chosen."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

BALANCE_MODES = ("paper", "metaclip")
STAGES = ("curate", "download")  # in order; `wit build --stop-after` picks the last one to run


@dataclass(frozen=True)
class CurateConfig:
    """How the candidate pool is turned into the set of pairs to download (wit_builder/curate.py, docs/curation.md)."""

    url_col: str = "url"  # img2dataset's default column names
    text_col: str = "text"
    uid_col: str = "uid"  # used when the pool has it; otherwise uid = "<file name>:<row number>"
    max_chars: int = 1000  # stored captions are cut to this (CLIP reads 76 tokens); matching sees the whole text
    languages: tuple[str, ...] = ("en",)  # the paper builds an English corpus (its query list is English)
    lang_threshold: float = 0.2  # lid.176's top score for short English captions is often 0.2-0.5 ("red apple": 0.26)
    cap: int = 20_000  # the paper: "up to 20,000 (image, text) pairs per query"; MetaCLIP's t
    balance: str = "paper"  # paper: a hard cap per attributed query; metaclip: MetaCLIP's sampling, no hard cap
    seed: int = 0  # every random choice (dedup winner, kept set) is a keyed hash of (seed, uid)

    def __post_init__(self):
        from wit_builder.errors import WitError

        if self.balance not in BALANCE_MODES:
            raise WitError(f"--balance {self.balance!r} is not one of {', '.join(BALANCE_MODES)}")
        if self.cap < 1:
            raise WitError(f"--cap must be at least 1 (got {self.cap})")
        if self.max_chars < 1:
            raise WitError(f"--max-chars must be at least 1 (got {self.max_chars})")
        if not 0.0 <= self.lang_threshold <= 1.0:
            raise WitError(f"--lang-threshold must be within [0, 1] (got {self.lang_threshold})")
        if not self.languages:
            raise WitError("--languages needs at least one language code, e.g. en")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BuildConfig:
    """One `wit build` run: inputs, output folder, where to stop, the curation and the download settings."""

    pool: tuple[str, ...]
    queries: str
    out: str
    curate: CurateConfig = field(default_factory=CurateConfig)
    stop_after: str = "download"  # curate: only select the pairs; download: also fetch them into OUT/shards
    workers: int | None = None  # actors per stateful stage (langid, match); default: the cluster's CPUs
    batch_size: int = 4096  # rows per Ray Data batch
    local: bool = False  # run the pure path in this process (no Ray): same output, for small pools
    force: bool = False  # rebuild OUT from scratch instead of resuming (inputs changed)
    # wit_builder.download.img2dataset_job.DownloadConfig (None: its defaults). Not imported here: img2dataset is a
    # heavy import and most users of this module only curate.
    download: object | None = None

    def __post_init__(self):
        from wit_builder.errors import WitError

        if self.stop_after not in STAGES:
            raise WitError(f"--stop-after {self.stop_after!r} is not one of {', '.join(STAGES)}")

    def curate_key(self) -> dict:
        """What shapes the curate stage's output: a rerun into the same folder must match it to reuse that stage."""
        return {"pool": list(self.pool), "queries": self.queries, "curate": self.curate.to_dict()}

    def to_dict(self) -> dict:
        return asdict(self)
