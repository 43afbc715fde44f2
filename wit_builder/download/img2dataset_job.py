"""One img2dataset run over a curated (uid, url, text, ...) table into WebDataset shards, with our address policy and
size guard inside every process that downloads, and every input row accounted for afterwards.

How the hooks reach the workers: `download()` builds its Downloader through the name `img2dataset.main.Downloader`;
while `_safe_img2dataset()` is active that name is `SafeDownloader`, a subclass that carries the policy, wraps the
resizer in `GuardedResizer` and writes through `SampleWriter`. The downloader object is what img2dataset ships to
its workers (pickled to multiprocessing's spawn pool, cloudpickled to Ray tasks), so every worker unpickles our class,
and `SafeDownloader.run_shard` swaps img2dataset's module-level fetch function for `SafeDownloader.fetch` for the
duration of one shard. No worker set-up hook and no change in other processes. Every name we replace or subclass is
pinned to img2dataset 1.47.0 and checked before each download (`check_img2dataset`), and a download leaves no
global state changed: img2dataset's attributes, the SIGINT handler and os.environ are as they were.

Layout under the output folder (img2dataset's own, see shards.py for the contract): NNNNN.tar, NNNNN.parquet (every
attempted row with status and error_message), NNNNN_stats.json, plus sizes.json and _wit/config.json (ours).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import io
import math
import multiprocessing
import os
import signal
import tempfile
import threading
import time
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.download import distribute
from wit_builder.download.guard import DEFAULT_MAX_IMAGE_AREA, GuardedResizer
from wit_builder.download.policy import DEADLINE_ERROR, AddressPolicy, Deadline, DeadlineExceeded, Refused, SafeOpener
from wit_builder.errors import WitError

__all__ = ["DEADLINE_ERROR", "DownloadConfig", "check_img2dataset", "download_shards", "shard_time_limit"]


@contextmanager
def _environ_kept():
    """Put back afterwards every os.environ entry changed meanwhile (added ones are removed)."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


with _environ_kept():  # albumentations (imported by img2dataset) phones PyPI at import unless this is set
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from img2dataset import downloader as _i2d_downloader
    from img2dataset.writer import WebDatasetSampleWriter

REQUIRED_COLUMNS = ("uid", "url", "text")
CONFIG_MARKER = "_wit/config.json"
TRANSIENT_HTTP_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})
IMG2DATASET_VERSION = "1.47.0"  # the version whose private names below we replace or subclass
# name -> its parameters in img2dataset 1.47.0 (None: must exist only)
IMG2DATASET_NAMES = {
    "img2dataset.main.Downloader": None,
    "img2dataset.main.multiprocessing_distributor": ("processes_count", "downloader", "reader", "_", "max_shard_retry"),
    "img2dataset.main.ray_distributor": ("processes_count", "downloader", "reader", "_", "max_shard_retry"),
    "img2dataset.downloader.download_image_with_retry": (
        "row",
        "timeout",
        "retries",
        "user_agent_token",
        "disallowed_header_directives",
    ),
    "img2dataset.downloader.is_disallowed": ("headers", "user_agent_token", "disallowed_header_directives"),
    "img2dataset.downloader.Downloader.download_shard": ("self", "row"),
    "img2dataset.downloader.Downloader.__init__": (
        "self",
        "sample_writer_class",
        "resizer",
        "thread_count",
        "save_caption",
        "extract_exif",
        "output_folder",
        "column_list",
        "timeout",
        "number_sample_per_shard",
        "oom_shard_count",
        "compute_hash",
        "verify_hash_type",
        "encode_format",
        "retries",
        "user_agent_token",
        "disallowed_header_directives",
        "blurring_bbox_col",
    ),
    "img2dataset.writer.WebDatasetSampleWriter.__init__": (
        "self",
        "shard_id",
        "output_folder",
        "save_caption",
        "oom_shard_count",
        "schema",
        "encode_format",
    ),
    "img2dataset.writer.WebDatasetSampleWriter.write": ("self", "img_str", "key", "caption", "meta"),
    "img2dataset.resizer.Resizer.__call__": ("self", "img_stream", "blurring_bbox_list"),
    "img2dataset.logger.LoggerProcess": None,
}
# Parameters that may grow at the end without breaking us: img2dataset passes them by keyword, fetch takes **kwargs.
IMG2DATASET_MAY_GROW = (
    "img2dataset.downloader.download_image_with_retry",
    "img2dataset.downloader.Downloader.__init__",
)
SHARD_MARGIN_S = 60.0  # per shard: worker start-up, reading the staged input, closing the tar and Parquet
RESIZE_S_PER_PAIR = 0.5  # per pair: header check, decode, resize, encode, write (an image is at most 40 Mpx)


@dataclass(frozen=True)
class DownloadConfig:
    """img2dataset settings for CLIP training data. Output-shaping fields are fingerprinted into _wit/config.json."""

    image_size: int = 256  # shorter side after resize: OpenCLIP/CLIP train at 224 px crops
    resize_mode: str = "keep_ratio"  # img2dataset: scale so the SHORTER side == image_size, aspect ratio kept
    resize_only_if_bigger: bool = False  # False: smaller images are upscaled too, so every sample's shorter side is 256
    encode_quality: int = 95  # JPEG quality
    encode_format: str = "jpg"
    number_sample_per_shard: int = 10_000
    min_image_size: int = 0  # drop images whose shorter side (before resize) is smaller; 0 keeps all
    max_image_area: int = DEFAULT_MAX_IMAGE_AREA  # checked from the header, before decoding (guard.py)
    max_image_bytes: int = 50_000_000  # larger bodies are not read to the end: failed "body larger than ..."
    extract_exif: bool = False  # img2dataset's default is True; nothing downstream reads EXIF
    timeout: float = 10.0  # seconds: socket timeout of each connect and read
    request_deadline: float = 30.0  # seconds for the whole fetch of a pair (all attempts, redirects, backoff)
    retries: int = 2  # extra attempts for transient failures only (timeouts, resets, 408/429/5xx); img2dataset: 0
    retry_backoff: float = 0.5  # seconds before the first retry, doubled each time
    shard_retries: int = 1  # reruns of a shard that failed as a whole (or whose Ray worker died); img2dataset: 1
    allow_hosts: tuple[str, ...] = ()  # HOST[:PORT] entries exempt from the address policy (e.g. a loopback demo)
    user_agent_token: str = "wit-clip"
    disallowed_header_directives: tuple[str, ...] = ("noai", "noimageai", "noindex", "noimageindex")
    processes_count: int = field(default_factory=lambda: os.cpu_count() or 1)
    thread_count: int = 32
    distributor: str = "multiprocessing"  # or "ray" (caller must have called ray.init)

    OUTPUT_FIELDS = (
        "image_size",
        "resize_mode",
        "resize_only_if_bigger",
        "encode_quality",
        "encode_format",
        "number_sample_per_shard",
        "min_image_size",
        "max_image_area",
        "max_image_bytes",
        "extract_exif",
    )

    def fingerprint(self) -> dict:
        """The settings that change what lands in the shards (not how fast): a rerun must match them."""
        return {name: getattr(self, name) for name in self.OUTPUT_FIELDS}


class SampleWriter(WebDatasetSampleWriter):
    """img2dataset's WebDataset writer, with `sha256` = hash of the stored image (what a reader can check) and the
    hash of the downloaded bytes kept as `source_sha256`, in both the sample .json and the shard Parquet."""

    def __init__(self, shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format):
        if "source_sha256" not in schema.names:
            schema = schema.append(pa.field("source_sha256", pa.string()))
        super().__init__(shard_id, output_folder, save_caption, oom_shard_count, schema, encode_format)

    def write(self, img_str, key, caption, meta):
        meta["source_sha256"] = meta.get("sha256")
        meta["sha256"] = hashlib.sha256(img_str).hexdigest() if img_str is not None else None
        super().write(img_str, key, caption, meta)


class SafeDownloader(_i2d_downloader.Downloader):
    """img2dataset's Downloader with our fetch (address policy, body cap, deadline, transient-only retries) and size
    guard."""

    def __init__(
        self,
        *args,
        policy: AddressPolicy,
        max_image_area: int,
        max_image_bytes: int,
        retry_backoff: float,
        request_deadline: float,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.max_image_bytes = max_image_bytes
        self.retry_backoff = retry_backoff
        self.request_deadline = request_deadline
        self.resizer = GuardedResizer(self.resizer, max_image_area)
        self.sample_writer_class = SampleWriter
        self._opener = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_opener"] = None  # rebuilt lazily in each worker
        return state

    def __call__(self, row):
        """img2dataset's convention, (written?, row), for its own distributors (e.g. pyspark)."""
        with self._our_fetch():
            return super().__call__(row)

    def run_shard(self, row) -> str | None:
        """Download one shard, row = (shard id, staged input file): None when it is written, else why not
        (our distributors, distribute.py, retry it or report it)."""
        try:
            with self._our_fetch():
                self.download_shard(row)
        except Exception as err:  # noqa: BLE001 - any failure of the shard is reported, not raised in the worker
            return f"{type(err).__name__}: {err}"
        return None

    @contextmanager
    def _our_fetch(self):
        if self._opener is None:  # here, before img2dataset starts its threads: one opener per shard, no race
            self._opener = SafeOpener(self.policy)
        original = _i2d_downloader.download_image_with_retry
        _i2d_downloader.download_image_with_retry = self.fetch
        try:
            yield
        finally:
            _i2d_downloader.download_image_with_retry = original

    def fetch(self, row, timeout, retries, user_agent_token=None, disallowed_header_directives=None, **_newer):
        """img2dataset's download_image_with_retry: (key, url) -> (key, BytesIO | None, error | None). One deadline
        covers every attempt of the pair: a deadline miss is final (a dripping server drips again), and a transient
        failure is retried only when its backoff ends before the deadline, so a pair never takes longer than
        request_deadline. Arguments a later img2dataset may add (`_newer`) are ignored; check_img2dataset flags them."""
        key, url = row
        error = None
        with Deadline(self.request_deadline) as deadline:
            for attempt in range(retries + 1):
                if attempt:
                    pause = self.retry_backoff * 2 ** (attempt - 1)
                    if pause >= deadline.remaining():
                        break
                    time.sleep(pause)
                stream, error, transient = self._fetch_once(
                    url, timeout, deadline, user_agent_token, disallowed_header_directives
                )
                if stream is not None or not transient:
                    return key, stream, error
        return key, None, error

    def _fetch_once(self, url, timeout, deadline, user_agent_token, disallowed_header_directives):
        """(BytesIO | None, error | None, transient?) of one attempt."""
        if self._opener is None:  # only when called outside run_shard
            self._opener = SafeOpener(self.policy)
        if not isinstance(url, str):
            return None, f"refused: url is {url!r}", False
        agent = f"Mozilla/5.0 (compatible; {user_agent_token or 'wit-clip'}; +img2dataset)"

        def check(headers):
            if disallowed_header_directives and _i2d_downloader.is_disallowed(
                headers, user_agent_token, disallowed_header_directives
            ):
                raise Refused("Use of image disallowed by X-Robots-Tag directive")

        try:
            body = self._opener.fetch(
                url,
                deadline,
                headers={"User-Agent": agent},
                timeout=timeout,
                max_bytes=self.max_image_bytes,
                check=check,
            )
            if len(body) > self.max_image_bytes:
                return None, f"body larger than {self.max_image_bytes} bytes", False
            return io.BytesIO(body), None, False
        except (Refused, DeadlineExceeded) as err:
            return None, str(err), False
        except urllib.error.HTTPError as err:
            return None, str(err), err.code in TRANSIENT_HTTP_CODES
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            return None, str(err) or type(err).__name__, True
        except Exception as err:  # noqa: BLE001 - any other failure is recorded on the row, as img2dataset does
            return None, str(err) or type(err).__name__, False


@contextmanager
def _safe_img2dataset(
    config: DownloadConfig, worker_env: dict[str, str] | None = None, pairs_per_shard: int | None = None
):
    """While active, img2dataset.main.download() builds a SafeDownloader carrying this config's policy and runs it
    with our distributors (distribute.py), which give up on a shard after shard_time_limit(); `worker_env` reaches
    Ray's workers (e.g. the S3 endpoint)."""
    i2d_main = importlib.import_module("img2dataset.main")  # the package re-exports a function named main

    check_img2dataset()
    policy = AddressPolicy.from_allow_hosts(config.allow_hosts)
    limit = shard_time_limit(config, pairs_per_shard)
    replaced = {
        "Downloader": functools.partial(
            SafeDownloader,
            policy=policy,
            max_image_area=config.max_image_area,
            max_image_bytes=config.max_image_bytes,
            retry_backoff=config.retry_backoff,
            request_deadline=config.request_deadline,
        ),
        "multiprocessing_distributor": functools.partial(distribute.process_distributor, shard_timeout=limit),
        "ray_distributor": functools.partial(distribute.ray_distributor, env_vars=worker_env, shard_timeout=limit),
    }
    originals = {name: getattr(i2d_main, name) for name in replaced}
    sigint = signal.getsignal(signal.SIGINT)  # download() installs a handler that exits 0; put ours back after
    try:
        for name, value in replaced.items():
            setattr(i2d_main, name, value)
        yield
    finally:
        for name, value in originals.items():
            setattr(i2d_main, name, value)
        _stop_img2dataset_loggers()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, sigint)


def shard_time_limit(config: DownloadConfig, pairs: int | None = None) -> float:
    """Seconds after which a shard of `pairs` pairs (default: a full shard) counts as stuck. Each pair's fetch ends
    within request_deadline (retries and backoff included), `thread_count` pairs are fetched at a time, and the
    shard's own thread decodes, resizes and writes each pair, so a healthy shard ends within
    ceil(pairs / thread_count) x request_deadline + pairs x RESIZE_S_PER_PAIR + SHARD_MARGIN_S."""
    pairs = config.number_sample_per_shard if pairs is None else min(pairs, config.number_sample_per_shard)
    pairs = max(pairs, 1)
    waves = math.ceil(pairs / max(config.thread_count, 1))
    return waves * config.request_deadline + pairs * RESIZE_S_PER_PAIR + SHARD_MARGIN_S


def _lookup(name: str):
    """The object a dotted name denotes: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(name)


def check_img2dataset(exact: bool = False) -> None:
    """Raise WitError naming the installed img2dataset version when a name we replace or subclass (IMG2DATASET_NAMES)
    is gone or its parameters differ from 1.47.0's. Parameters added at the end of the functions that img2dataset
    calls by keyword (IMG2DATASET_MAY_GROW) are tolerated unless `exact` (the test: review every upgrade)."""
    from importlib.metadata import version

    installed = version("img2dataset")
    problems = []
    if exact and installed != IMG2DATASET_VERSION:
        problems.append(f"version {installed} is not the pinned {IMG2DATASET_VERSION}")
    for name, pinned in IMG2DATASET_NAMES.items():
        try:
            value = _lookup(name)
        except (AttributeError, ImportError):
            problems.append(f"{name} is gone")
            continue
        if pinned is None:
            continue
        found = tuple(inspect.signature(value).parameters)
        grown = found[: len(pinned)] == pinned and name in IMG2DATASET_MAY_GROW and not exact
        if found != pinned and not grown:
            problems.append(f"{name}{_params(found)} is not {_params(pinned)}")
    if problems:
        raise WitError(
            f"img2dataset {installed} does not match img2dataset {IMG2DATASET_VERSION}, which wit-clip's download "
            f"hooks (wit_builder/download/img2dataset_job.py, distribute.py) are written against: "
            f"{'; '.join(problems)}. "
            f"Install img2dataset=={IMG2DATASET_VERSION}, or review the hooks and update IMG2DATASET_NAMES."
        )


def _params(names) -> str:
    return f"({', '.join(names)})"


def _stop_img2dataset_loggers() -> None:
    """Stop img2dataset's stats-logger process when download() raised before stopping it: it loops until told to
    stop, and Python waits for it at exit, so a failed build would hang instead of ending."""
    from img2dataset.logger import LoggerProcess

    for child in multiprocessing.active_children():
        if isinstance(child, LoggerProcess):
            child.join()


def img2dataset_kwargs(config: DownloadConfig, url_list: str, output_folder: str, extra_columns: list[str]) -> dict:
    """The keyword arguments of img2dataset.download() for a config (also used by the benchmark's baseline)."""
    return dict(
        url_list=url_list,
        input_format="parquet",
        url_col="url",
        caption_col="text",
        save_additional_columns=["uid", *extra_columns],
        output_format="webdataset",
        output_folder=output_folder,
        image_size=config.image_size,
        resize_mode=config.resize_mode,
        resize_only_if_bigger=config.resize_only_if_bigger,
        encode_quality=config.encode_quality,
        encode_format=config.encode_format,
        number_sample_per_shard=config.number_sample_per_shard,
        min_image_size=config.min_image_size,
        extract_exif=config.extract_exif,
        compute_hash="sha256",
        timeout=config.timeout,
        retries=config.retries,
        user_agent_token=config.user_agent_token,
        disallowed_header_directives=list(config.disallowed_header_directives),
        processes_count=config.processes_count,
        thread_count=config.thread_count,
        distributor=config.distributor,
        max_shard_retry=config.shard_retries,
        incremental_mode="incremental",
        enable_wandb=False,
    )


def _check_input(pairs: pa.Table) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in pairs.column_names]
    if missing:
        raise WitError(f"curated pairs lack column(s) {', '.join(missing)} (have: {', '.join(pairs.column_names)})")
    uids = pairs.column("uid")
    if uids.null_count or len(set(uids.to_pylist())) != pairs.num_rows:
        raise WitError("curated pairs have null or repeated uid values: each pair needs a unique uid")


def _check_config(out: str, config: DownloadConfig, pairs: pa.Table) -> None:
    """Write _wit/config.json on the first run; refuse a rerun into the same folder with other settings or input."""
    from wit_builder import storage

    digest = hashlib.sha256("\n".join(map(str, pairs.column("uid").to_pylist())).encode()).hexdigest()[:16]
    wanted = {"config": config.fingerprint(), "input_rows": pairs.num_rows, "input_uids_sha256": digest}
    marker = f"{out}/{CONFIG_MARKER}"
    if storage.exists(marker):
        found = storage.read_json(marker)
        if found != wanted:
            diffs = [k for k in wanted["config"] if found.get("config", {}).get(k) != wanted["config"][k]]
            what = f"settings {', '.join(diffs)}" if diffs else "input pairs"
            raise WitError(
                f"{out} was downloaded with different {what} ({marker}): use a new output folder, or rerun with the "
                f"same settings to resume"
            )
    else:
        storage.write_json(marker, wanted)


def download_shards(
    pairs: pa.Table, out: str, config: DownloadConfig = DownloadConfig(), extra_columns: tuple[str, ...] | None = None
) -> pa.Table:
    """Download `pairs` (uid, url, text + extra columns carried into each sample's .json) into WebDataset shards
    under `out` (a folder or s3:// prefix); returns the accounting table (status.py), one row per input pair.
    Rerunning into the same `out` skips finished shards (img2dataset's incremental mode)."""
    _check_input(pairs)
    try:
        AddressPolicy.from_allow_hosts(config.allow_hosts)
    except ValueError as err:
        raise WitError(f"{err}: give --allow-hosts as HOST[:PORT],... e.g. 127.0.0.1:8777") from err
    if not config.request_deadline > 0:
        raise WitError(f"--request-deadline must be a positive number of seconds, not {config.request_deadline}")
    if extra_columns is None:
        extra_columns = tuple(c for c in pairs.column_names if c not in REQUIRED_COLUMNS)
    out = out.rstrip("/")
    with _environ_kept():  # export_endpoint_env sets AWS_* for img2dataset's processes: only for this download
        return _download(pairs, out, config, extra_columns)


def _download(pairs: pa.Table, out: str, config: DownloadConfig, extra_columns: tuple[str, ...]) -> pa.Table:
    from img2dataset import download

    from wit_builder import storage
    from wit_builder.download import shards, status

    worker_env = None
    if storage.is_s3(out):
        storage.export_endpoint_env()
        worker_env = storage.s3_env_vars()
    else:
        out = os.path.abspath(out)
    storage.check_reachable(out)
    _check_config(out, config, pairs)
    storage.remove(f"{out}/{shards.SIZES_FILE}")  # img2dataset parses every top-level *.json as NNNNN_stats.json
    with tempfile.TemporaryDirectory(prefix="wit-download-") as tmp:
        url_list = os.path.join(tmp, "pairs.parquet")
        pq.write_table(pairs.select([*REQUIRED_COLUMNS, *extra_columns]), url_list)
        kwargs = img2dataset_kwargs(config, url_list, out, list(extra_columns))
        with _safe_img2dataset(config, worker_env, pairs.num_rows):
            try:
                download(**kwargs)
            except SystemExit as err:  # img2dataset's SIGINT handler calls sys.exit(0): not a success
                raise WitError(f"download into {out} was interrupted: rerun the same command to resume") from err
            except distribute.ShardsFailed as err:
                raise WitError(_shards_failed_message(out, err)) from err
            except Exception as err:  # noqa: BLE001 - e.g. the storage went away while staging the shards
                raise WitError(
                    f"download into {out} failed ({type(err).__name__}: {err}): fix the cause above, then rerun the "
                    f"same command to resume (finished shards are kept)"
                ) from err
    expected = -(-pairs.num_rows // config.number_sample_per_shard)
    shards.check_complete(out, expected)
    storage.remove_tree(f"{out}/_tmp")  # img2dataset leaves its staged shard inputs behind on S3
    accounting = status.read_status(out)
    status.assert_accounted(pairs.column("uid").to_pylist(), accounting)
    shards.write_sizes(out)
    return accounting


def _shards_failed_message(out: str, err: distribute.ShardsFailed) -> str:
    lines = [f"download into {out}: {len(err.failures)} of {err.total} shard(s) did not finish:"]
    lines += [f"  shard {shard:05d}: {error}" for shard, error in list(err.failures.items())[:10]]
    if len(err.failures) > 10:
        lines.append(f"  ... and {len(err.failures) - 10} more")
    lines.append("Finished shards are kept: fix the cause, then rerun the same command to redo only the others.")
    return "\n".join(lines)


def config_from_dict(values: dict) -> DownloadConfig:
    """Build a DownloadConfig from plain values (e.g. parsed CLI args), ignoring unknown keys."""
    names = {f.name for f in dataclasses.fields(DownloadConfig)}
    clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names}
    return DownloadConfig(**clean)
