"""Training data: WebDataset shards of (image, caption) pairs -> batches of normalised image crops and CLIP tokens.

Sources (`resolve_shards`): a `wit build --out OUT` folder (its finished shards, `BuildFolder.shard_urls()`, with
`read_sizes()`), a folder of `.tar` shards made elsewhere (img2dataset, OpenCLIP users' LAION shards; `sizes.json`
read when present), a brace pattern (`shards/{00000..00041}.tar`) or one `.tar`; local paths or `s3://`.

A sample is one WebDataset key of a shard: `KEY.jpg` (or .jpeg/.png/.webp) and `KEY.txt`. A sample with an image that
does not decode, no image member, no caption member or an empty caption is *corrupt*: it is skipped and counted by
reason (`SKIP_REASONS`), never an error.

Two stages, split so that every random choice is a pure function of (seed, epoch, key) and the stream each training
worker sees is identical from one run to the next (what makes a resumed run repeat an uninterrupted one exactly):
1. `prepare_batch` (run by Ray Data in parallel tasks, or in-process by the plain reader): decode the image, resize it
   so its shorter side is `image_size` (bicubic), lay it out landscape (portraits are transposed, flagged), keep the
   central `image_size x ceil(image_size * MAX_ASPECT)` window (zero-padded), and tokenise the caption with CLIP's
   tokenizer. Rows keep their key; corrupt rows stay in the stream with a reason, so they can be counted exactly.
2. `collate` (on the training worker): drop and count corrupt rows, take the paper's only augmentation, a random
   square crop of the resized image (offset drawn from (seed, epoch, key); a center crop for evaluation), and
   normalise with CLIP's mean/std into float32 [B, 3, S, S] images and int64 [B, 77] tokens.

Epoch: one pass over every shard of the source, in shard order, with samples shuffled within a buffer of
`shuffle_buffer` rows (Ray Data's local shuffle on each worker, seeded by (seed, epoch)). With W workers Ray Train
splits the stream (`streaming_split(W, equal=True)`, order preserved so the split is deterministic): each sample goes
to exactly one worker, except at most W - 1 rows at the very end that an equal split drops. Every step consumes one
full local batch on every worker; the rows left on a worker when any worker runs out of full batches (fewer than a
batch, plus the corrupt-row imbalance) are the epoch's *tail*, counted and not trained on (OpenCLIP drops its last
partial batch likewise). So per epoch: rows = trained + corrupt + tail (+ the equal split's remainder).

Data position: the number of rows (corrupt included) a worker has taken from its stream in the current epoch; a
checkpoint stores it and a resumed run skips that many rows of the same deterministic stream.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from wit_builder import storage
from wit_builder.errors import WitError

# CLIP's normalisation (OpenAI's preprocess, RGB).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
# The longest side kept around the center, as a multiple of the shorter: the random crop moves within it.
MAX_ASPECT = 4 / 3
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
TEXT_SUFFIX = "txt"
SKIP_REASONS = ("no_image", "no_caption", "empty_caption", "bad_image")


@dataclass(frozen=True)
class Shards:
    """What `--data` names: the shard paths/URIs in order, their sample counts when known, and where they came from."""

    urls: tuple[str, ...]
    sizes: dict[str, int] | None = None  # {"NNNNN.tar": samples}, None when the source has no sizes.json
    source: str = ""

    @property
    def num_samples(self) -> int | None:
        if self.sizes is None:
            return None
        return sum(int(self.sizes.get(u.rsplit("/", 1)[-1], 0)) for u in self.urls)


def resolve_shards(data: str) -> Shards:
    """The shards `data` names (see the module docstring); WitError with what to give when it names none."""
    from wit_builder import layout

    data = data.rstrip("/") if not data.endswith("://") else data
    hint = (
        "give a `wit build --out` folder, a folder of WebDataset .tar shards, a brace pattern like "
        "'shards/{00000..00009}.tar', or one .tar file"
    )
    if "{" in data:
        import braceexpand

        urls = tuple(braceexpand.braceexpand(data))
        missing = [u for u in urls if not storage.exists(u)]
        if missing:
            raise WitError(
                f"--data {data}: {len(missing)} of {len(urls)} shards do not exist "
                f"(first: {missing[0]}): check the pattern"
            )
        return Shards(urls, _sizes_near(urls[0]), data)
    if data.endswith(".tar"):
        if not storage.exists(data):
            raise WitError(f"--data {data} does not exist: {hint}")
        return Shards((data,), _sizes_near(data), data)
    folder = layout.BuildFolder(data)
    if storage.exists(folder.manifest) or storage.listdir(folder.shards, ".tar"):
        urls = tuple(folder.shard_urls())
        if urls:
            return Shards(urls, folder.read_sizes(), data)
        unfinished = folder.unfinished_shards()
        if unfinished:
            raise WitError(
                f"--data {data}: the build's {len(unfinished)} shard(s) under {folder.shards} did not "
                "finish: rerun the same `wit build` to finish them"
            )
        if storage.listdir(folder.shards, ".tar"):  # shards/ of .tar made elsewhere, no stats files
            urls = tuple(storage.listdir(folder.shards, ".tar"))
            return Shards(urls, _sizes_near(urls[0]), data)
        raise WitError(f"--data {data} is a build folder with no shards: run `wit build` with --stop-after download")
    if not storage.is_s3(data) and not _local_exists(data):
        raise WitError(f"--data {data} does not exist: {hint}")
    urls = tuple(storage.listdir(data, ".tar"))
    if not urls:
        raise WitError(f"--data {data} holds no .tar shards: {hint}")
    return Shards(urls, _sizes_near(urls[0]), data)


def _local_exists(path: str) -> bool:
    import os

    return os.path.isdir(path)


def _sizes_near(url: str) -> dict[str, int] | None:
    sizes = url.rsplit("/", 1)[0] + "/sizes.json" if "/" in url else "sizes.json"
    try:
        return {str(k): int(v) for k, v in storage.read_json(sizes).items()} if storage.exists(sizes) else None
    except (ValueError, AttributeError):
        return None


# --- stage 1: decode, resize, tokenise (pure functions of the sample) -------------------------------------------


def padded_width(image_size: int) -> int:
    return math.ceil(image_size * MAX_ASPECT)


@lru_cache(maxsize=4)
def _tokenizer(path: str | None, context_length: int):
    from trainer.tokenizer import load_tokenizer

    return load_tokenizer(path, context_length)


def decode_image(data: bytes, image_size: int) -> tuple[np.ndarray, int, bool]:
    """uint8 [S, ceil(S * MAX_ASPECT), 3] landscape layout of the resized image (shorter side S), the valid width, and
    whether it was transposed; raises on an undecodable image."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        w, h = im.size
        if min(w, h) < 1:
            raise ValueError("empty image")
        scale = image_size / min(w, h)
        size = (
            (image_size, max(image_size, round(h * scale)))
            if w <= h
            else (max(image_size, round(w * scale)), image_size)
        )
        arr = np.asarray(im.resize(size, Image.BICUBIC))
    transposed = arr.shape[0] > arr.shape[1]
    if transposed:
        arr = arr.transpose(1, 0, 2)
    cap = padded_width(image_size)
    width = min(arr.shape[1], cap)
    start = (arr.shape[1] - width) // 2
    out = np.zeros((image_size, cap, 3), dtype=np.uint8)
    out[:, :width] = arr[:image_size, start : start + width]
    return out, width, transposed


def _as_bytes(value) -> bytes | None:
    if value is None or isinstance(value, float):  # a member the sample lacks: null, or NaN once pandas saw it
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def prepare_rows(
    rows: Iterable[dict], image_size: int, tokenizer_path: str | None = None, context_length: int = 77
) -> dict[str, np.ndarray]:
    """Stage 1 over raw WebDataset rows ({"__key__", "jpg", "txt", ...}, members as bytes): a column batch with key,
    reason ("" for a good row), image [n, S, W, 3] uint8, width, transposed and tokens [n, context] int64."""
    rows = list(rows)
    n, cap = len(rows), padded_width(image_size)
    keys, reasons, captions = [], [], []
    images = np.zeros((n, image_size, cap, 3), dtype=np.uint8)
    widths = np.zeros(n, dtype=np.int32)
    transposed = np.zeros(n, dtype=bool)
    for i, row in enumerate(rows):
        keys.append(str(row.get("__key__")))
        image = next((_as_bytes(row.get(s)) for s in IMAGE_SUFFIXES if row.get(s) is not None), None)
        text = _as_bytes(row.get(TEXT_SUFFIX))
        caption = text.decode("utf-8", errors="replace").strip() if text is not None else ""
        reason = (
            "no_image" if image is None else "no_caption" if text is None else "empty_caption" if not caption else ""
        )
        if not reason:
            try:
                images[i], widths[i], transposed[i] = decode_image(image, image_size)
            except Exception:  # noqa: BLE001 - any decoder failure means one corrupt sample, never a crash
                reason = "bad_image"
        reasons.append(reason)
        captions.append(caption if not reason else "")
    tokens = (
        _tokenizer(tokenizer_path, context_length).tokenize(captions) if n else np.zeros((0, context_length), np.int64)
    )
    return {
        "key": np.array(keys, dtype=object),
        "reason": np.array(reasons, dtype=object),
        "image": images,
        "width": widths,
        "transposed": transposed,
        "tokens": tokens,
    }


def prepare_batch(
    batch, image_size: int, tokenizer_path: str | None = None, context_length: int = 77
) -> dict[str, np.ndarray]:
    """Ray Data's map_batches function: a pyarrow batch from read_webdataset (decoder off; a member a sample lacks is
    null) -> `prepare_rows`."""
    return prepare_rows(batch.to_pylist(), image_size, tokenizer_path, context_length)


# --- stage 2: on the training worker ------------------------------------------------------------------------------


def crop_offset(seed: int, epoch: int, key: str, room: int) -> int:
    """The random crop's offset in [0, room], a pure function of (seed, epoch, key)."""
    if room <= 0:
        return 0
    digest = hashlib.blake2b(f"{seed}:{epoch}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (room + 1)


def collate(
    rows: dict[str, np.ndarray], image_size: int, seed: int, epoch: int, train: bool = True
) -> dict[str, torch.Tensor]:
    """Good rows of a stage-1 batch -> {"images": float32 [B, 3, S, S] normalised, "tokens": int64 [B, ctx], "keys"}:
    a random square crop along the longer side (train) or the center one (eval)."""
    crops = []
    for img, width, flip, key in zip(rows["image"], rows["width"], rows["transposed"], rows["key"]):
        room = int(width) - image_size
        off = crop_offset(seed, epoch, str(key), room) if train else max(0, room) // 2
        crop = img[:, off : off + image_size]
        crops.append(crop.transpose(1, 0, 2) if flip else crop)
    x = torch.from_numpy(np.stack(crops)) if crops else torch.zeros((0, image_size, image_size, 3), dtype=torch.uint8)
    x = x.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return {
        "images": ((x - mean) / std).contiguous(),
        "tokens": torch.as_tensor(np.asarray(rows["tokens"])),
        "keys": [str(k) for k in rows["key"]],
    }


@dataclass
class EpochCounts:
    """One worker's accounting of its stream in the current epoch (rows = taken rows, corrupt ones included)."""

    rows: int = 0
    trained: int = 0
    skipped: Counter = field(default_factory=Counter)
    tail: int = 0


class Batcher:
    """Turns a worker's stream of stage-1 column batches into exact local batches of good rows, counting corrupt rows.

    `skip_rows` rows of the stream are dropped first (the data position of a resumed epoch). After each `take`,
    `counts.rows` is the position just after the last row handed out, and `counts.skipped` counts the corrupt rows
    before it: exactly what a checkpoint must hold for a resumed run to go on with the same rows."""

    def __init__(self, batches: Iterator[dict], batch_size: int, skip_rows: int = 0):
        self.batches, self.batch_size = batches, batch_size
        self.counts = EpochCounts(rows=skip_rows)
        self._index = 0  # stream index of the next row pulled
        self._skip = skip_rows
        self._pending: list[tuple[int, dict]] = []  # (stream index, row) of good rows waiting for a full batch
        self._corrupt: list[tuple[int, str]] = []  # (stream index, reason) of corrupt rows not yet behind the position
        self._done = False

    def _pull(self) -> None:
        try:
            batch = next(self.batches)
        except StopIteration:
            self._done = True
            return
        for i in range(len(batch["key"])):
            index, self._index = self._index, self._index + 1
            if index < self._skip:
                continue
            reason = batch["reason"][i]
            if reason:
                self._corrupt.append((index, str(reason)))
            else:
                self._pending.append(
                    (index, {k: batch[k][i] for k in ("key", "image", "width", "transposed", "tokens")})
                )

    def has_full_batch(self) -> bool:
        """Pull from the stream until a full local batch is pending or the stream ends."""
        while len(self._pending) < self.batch_size and not self._done:
            self._pull()
        return len(self._pending) >= self.batch_size

    def _advance(self, position: int) -> None:
        self.counts.skipped.update(r for i, r in self._corrupt if i < position)
        self._corrupt = [(i, r) for i, r in self._corrupt if i >= position]
        self.counts.rows = position

    def take(self) -> dict[str, np.ndarray]:
        """The next full local batch (call after has_full_batch() is True), as stage-1 columns."""
        taken, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        self._advance(taken[-1][0] + 1)
        self.counts.trained += len(taken)
        rows = [r for _, r in taken]
        return {
            k: np.array([r["key"] for r in rows], dtype=object) if k == "key" else np.stack([r[k] for r in rows])
            for k in rows[0]
        }

    def drain(self) -> int:
        """End of the epoch for this worker: consume what is left; returns the tail (good rows not trained on)."""
        while not self._done:
            self._pull()
        self.counts.tail += len(self._pending)
        self._pending = []
        self._advance(max(self._index, self.counts.rows))
        return self.counts.tail


# --- Ray Data --------------------------------------------------------------------------------------------------


def ray_dataset(
    shards: Shards,
    image_size: int,
    tokenizer_path: str | None = None,
    context_length: int = 77,
    batch_rows: int = 64,
    filesystem=None,
):
    """A Ray Data dataset of stage-1 rows over `shards` (read_webdataset with its decoder off, then
    `prepare_batch` in parallel tasks). Iterate with preserve_order for a deterministic stream (ray_train does).
    `filesystem` overrides the one storage resolves (e.g. one that carries credentials to Ray's tasks)."""
    import ray

    fs = filesystem or storage.filesystem(shards.urls[0])[0]
    paths = [storage.filesystem(u)[1] for u in shards.urls]
    ds = ray.data.read_webdataset(paths, filesystem=fs, decoder=None, override_num_blocks=len(paths))
    return ds.map_batches(
        prepare_batch,
        batch_format="pyarrow",
        batch_size=batch_rows,
        fn_kwargs={"image_size": image_size, "tokenizer_path": tokenizer_path, "context_length": context_length},
    )


def iter_stream(ds_iterator, shuffle_buffer: int, seed: int, epoch: int, batch_rows: int = 64) -> Iterator[dict]:
    """A worker's stage-1 column batches for one epoch from a Ray DataIterator (its dataset shard)."""
    kwargs = {}
    if shuffle_buffer > 0:
        kwargs = {"local_shuffle_buffer_size": shuffle_buffer, "local_shuffle_seed": seed * 100_003 + epoch}
    yield from ds_iterator.iter_batches(batch_size=batch_rows, batch_format="numpy", prefetch_batches=2, **kwargs)


# --- the plain reader -------------------------------------------------------------------------------------------


def iter_plain(
    shards: Shards, image_size: int, tokenizer_path: str | None = None, context_length: int = 77, batch_rows: int = 64
) -> Iterator[dict]:
    """The same stage-1 column batches in one process with the `webdataset` library (tests, overhead baseline):
    every shard in order (local or s3://, opened through wit_builder.storage), every sample once, corrupt samples
    flagged as in Ray Data."""
    from webdataset import tariterators

    def samples():
        for url in shards.urls:
            fs, path = storage.filesystem(url)
            with fs.open_input_stream(path) as stream:
                files = tariterators.tar_file_expander([{"stream": stream, "url": url}])
                yield from tariterators.group_by_keys(files)

    stream = samples()
    rows: list[dict] = []
    for sample in stream:
        rows.append(sample)
        if len(rows) == batch_rows:
            yield prepare_rows(rows, image_size, tokenizer_path, context_length)
            rows = []
    if rows:
        yield prepare_rows(rows, image_size, tokenizer_path, context_length)
