"""The shard contract, written once, plus the functions that check it and read shards back.

Under an output folder OUT/shards (local or s3://bucket/prefix/shards), for each shard NNNNN (5 digits):
- NNNNN.tar: WebDataset members for each KEPT pair only, key = shard id + row index (zero-padded, e.g. 000000012):
    KEY.jpg  the image, shorter side = DownloadConfig.image_size (256), aspect ratio kept, JPEG quality 95
    KEY.txt  the caption (the pair's text)
    KEY.json uid, url, caption, key, the carried columns (queries, language, ...), status, error_message,
             width/height (stored) and original_width/original_height (downloaded) = the sizes,
             sha256 (of the stored KEY.jpg bytes), source_sha256 (of the downloaded bytes)
- NNNNN.parquet: one row per ATTEMPTED pair (kept and failed) with the same fields as KEY.json; status is
  success | failed_to_download | failed_to_resize and error_message says why (status.py maps it to kept/failed)
- NNNNN_stats.json: img2dataset's per-shard counters; its presence marks the shard finished (a rerun skips it)
Plus sizes.json ({"NNNNN.tar": number of samples}, what OpenCLIP's WebDataset loader reads) and _wit/config.json
(the settings that shaped the shards; a rerun with other settings is refused).
"""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder import storage
from wit_builder.errors import WitError

SIZES_FILE = "sizes.json"
STATS_SUFFIX = "_stats.json"


def shard_names(out: str) -> list[str]:
    """NNNNN names of finished shards (those with NNNNN_stats.json)."""
    names = [p.rsplit("/", 1)[-1][: -len(STATS_SUFFIX)] for p in storage.listdir(out, STATS_SUFFIX)]
    return sorted(n for n in names if n.isdigit())


def check_complete(out: str, expected: int) -> None:
    """Raise a WitError naming the unfinished shards when fewer than `expected` have their stats file."""
    done = set(shard_names(out))
    missing = [f"{i:05d}" for i in range(expected) if f"{i:05d}" not in done]
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise WitError(
            f"{len(missing)} of {expected} download shards did not finish under {out} ({shown}): a worker crashed or "
            f"the storage failed (see the log above); rerun the same command to redo only those shards"
        )


def shard_sizes(out: str) -> dict[str, int]:
    """{"NNNNN.tar": kept samples} from each finished shard's Parquet."""
    sizes = {}
    for name in shard_names(out):
        fs, path = storage.filesystem(f"{out}/{name}.parquet")
        status = pq.read_table(path, filesystem=fs, columns=["status"]).column("status")
        sizes[f"{name}.tar"] = int(pc.sum(pc.equal(status, "success")).as_py() or 0)
    return sizes


def write_sizes(out: str) -> dict[str, int]:
    sizes = shard_sizes(out)
    storage.write_json(f"{out}/{SIZES_FILE}", sizes)
    return sizes


def tar_paths(out: str) -> list[str]:
    return [f"{out}/{name}.tar" for name in shard_names(out)]


def iter_samples(out: str):
    """Raw samples (dict with __key__, __url__, jpg, txt, json bytes) of every finished shard, read with the
    webdataset library (local files by path, s3:// objects through pyarrow streams)."""
    import webdataset as wds

    paths = tar_paths(out)
    if not storage.is_s3(out):
        yield from wds.WebDataset(paths, shardshuffle=False, empty_check=False)
        return
    from webdataset.tariterators import group_by_keys, tar_file_expander

    def sources():
        for uri in paths:
            yield {"url": uri, "stream": io.BytesIO(storage.read_bytes(uri))}

    yield from group_by_keys(tar_file_expander(sources()))


def verify(out: str) -> dict[str, int]:
    """Read every shard back and check the contract: each sample has jpg/txt/json, its image decodes, its sha256
    matches the stored bytes, its width/height match, and per shard the tar count == Parquet successes == sizes.json.
    Returns {"samples": n, "shards": m}; raises WitError on the first violation."""
    from PIL import Image

    sizes = storage.read_json(f"{out}/{SIZES_FILE}") if storage.exists(f"{out}/{SIZES_FILE}") else None
    expected = shard_sizes(out)
    if sizes is not None and sizes != expected:
        raise WitError(f"{out}/{SIZES_FILE} says {sizes} but the shard Parquet files say {expected}")
    counts: dict[str, int] = {}
    for sample in iter_samples(out):
        key = sample["__key__"]
        missing = [ext for ext in ("jpg", "txt", "json") if ext not in sample]
        if missing:
            raise WitError(f"sample {key} in {sample['__url__']} lacks {', '.join(missing)}")
        meta = json.loads(sample["json"])
        if hashlib.sha256(sample["jpg"]).hexdigest() != meta["sha256"]:
            raise WitError(f"sample {key} in {sample['__url__']}: image bytes do not match its sha256")
        with Image.open(io.BytesIO(sample["jpg"])) as image:
            image.load()
            if image.size != (meta["width"], meta["height"]):
                raise WitError(f"sample {key}: image is {image.size}, json says {meta['width']}x{meta['height']}")
        shard = sample["__url__"].rsplit("/", 1)[-1]
        counts[shard] = counts.get(shard, 0) + 1
    for shard, n in expected.items():
        if counts.get(shard, 0) != n:
            raise WitError(f"{shard} holds {counts.get(shard, 0)} samples but its Parquet records {n} successes")
    return {"samples": sum(counts.values()), "shards": len(expected)}
