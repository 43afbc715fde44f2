"""The training side of the overlap report and of `wit dedup`: every sample of a corpus's WebDataset shards (a `wit
build` folder, a folder of `.tar` shards, a brace pattern or one tar; local or s3://) with its key, caption and
near-duplicate signatures. In process, or as Ray Data batch inference with an actor pool holding the detector for a
large corpus. A sample without an image member, or whose image does not decode, is a counted skip, never an error."""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.neardup.detector import Signatures, sign
from eval.neardup.images import decode
from eval.neardup.model import Embedder
from wit_builder.errors import WitError

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")
RAY_MIN_SAMPLES = 50_000  # from this many samples (per the shards' sizes.json) signing runs on Ray Data
BATCH = 256


@dataclass(frozen=True)
class Sample:
    """One WebDataset sample: its key, the shard it is in, the image member's bytes (None when it has none) and the
    caption ('' when none)."""

    key: str
    shard: str
    image: bytes | None
    caption: str


@dataclass
class Corpus:
    """Signed samples of a corpus, one row per sample that has an image member: key, shard, caption, signatures.
    `skipped` counts samples left out (no_image) and images that did not decode (by reason)."""

    keys: list[str]
    shards: list[str]
    captions: list[str]
    signatures: Signatures
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


def shard_urls(data: str) -> list[str]:
    """The shards `data` names, in order (the trainer's rules: a build folder's finished shards, a folder, a brace
    pattern or one tar)."""
    from trainer.data import resolve_shards

    return list(resolve_shards(data).urls)


def _member(sample: dict, suffixes) -> bytes | None:
    """The first member of `suffixes` a sample has (Ray Data fills a member a row lacks with null or NaN)."""
    return next((bytes(sample[s]) for s in suffixes if isinstance(sample.get(s), (bytes, bytearray))), None)


def iter_samples(urls: list[str], skipped: Counter | None = None) -> Iterator[Sample]:
    """Every sample of the shards in order. A shard that cannot be read to its end raises WitError naming it."""
    from eval.datasets import tar_samples

    for url in urls:
        try:
            for raw in tar_samples(url):
                image = _member(raw, IMAGE_SUFFIXES)
                text = raw.get("txt")
                caption = text.decode("utf-8", errors="replace").strip() if isinstance(text, bytes) else ""
                if image is None and skipped is not None:
                    skipped["no_image"] += 1
                yield Sample(str(raw.get("__key__")), url, image, caption)
        except WitError:
            raise
        except Exception as err:  # noqa: BLE001 - tarfile/webdataset raise many types for a damaged shard
            raise WitError(f"cannot read shard {url}: {type(err).__name__}: {err} (re-download or remove it)") from err


def training_sample(urls: list[str], n: int, seed: int = 0) -> list[bytes]:
    """Up to `n` images of the corpus to train the detector on: the ones whose seeded hash of the key is smallest, so
    the choice is deterministic, spread over every shard and made in one streaming pass."""
    scored: list[tuple[bytes, bytes]] = []
    for s in iter_samples(urls):
        if s.image is None:
            continue
        scored.append((hashlib.blake2b(f"{seed}:{s.shard}:{s.key}".encode(), digest_size=8).digest(), s.image))
        if len(scored) > 4 * n:  # keep memory bounded: drop all but the n best so far
            scored = sorted(scored)[:n]
    return [image for _, image in sorted(scored)[:n]]


def sign_corpus(
    urls: list[str], model: Embedder, ray: bool | None = None, progress: bool = False, views: Sequence[str] = ()
) -> Corpus:
    """Signatures of every image of the shards (Ray Data from RAY_MIN_SAMPLES samples on, or when `ray` says so),
    with `views` (names in eval.neardup.detector.VIEWS) also each image's extra views."""
    if not urls:
        raise WitError("the training corpus has no shards")
    use_ray = ray if ray is not None else _known_size(urls) >= RAY_MIN_SAMPLES
    views = tuple(views)
    corpus = _sign_ray(urls, model, views) if use_ray else _sign_local(urls, model, progress, views)
    if not corpus.signatures.ok.any():
        raise WitError(
            f"the training corpus ({len(urls)} shard(s)) has no decodable image (skipped: {corpus.skipped or 'none'}):"
            " give shards with .jpg/.png/.webp members"
        )
    return corpus


def _known_size(urls: list[str]) -> int:
    from trainer.data import _sizes_near

    sizes = _sizes_near(urls[0]) or {}
    return sum(int(sizes.get(u.rsplit("/", 1)[-1], 0)) for u in urls)


def _sign_local(urls: list[str], model: Embedder, progress: bool, views: tuple[str, ...] = ()) -> Corpus:
    skipped: Counter = Counter()
    keys, shards, captions, images, parts = [], [], [], [], []
    bar = _bar(progress)
    for s in iter_samples(urls, skipped):
        if s.image is None:
            continue
        keys.append(s.key)
        shards.append(s.shard)
        captions.append(s.caption)
        images.append(s.image)
        if len(images) == BATCH:
            parts.append(sign(model, images, views))
            bar.update(len(images))
            images = []
    if images:
        parts.append(sign(model, images, views))
        bar.update(len(images))
    bar.close()
    signatures = Signatures.concat(parts, model.embed_dim, len(views))
    skipped.update(signatures.skipped)
    return Corpus(keys, shards, captions, signatures, dict(skipped))


def _bar(progress: bool):
    from tqdm import tqdm

    return tqdm(desc="overlap: signing training images", unit="img", disable=not progress, file=sys.stderr)


class _Signer:
    """Ray Data actor: holds the detector, signs a batch of raw WebDataset rows."""

    def __init__(self, model_ref, views: tuple[str, ...] = ()):
        import ray

        self.model = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
        self.model.eval()
        self.views = views

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        images = [_member(r, IMAGE_SUFFIXES) for r in rows]
        have = [i for i, im in enumerate(images) if im is not None]
        sig = sign(self.model, [images[i] for i in have], self.views)
        n = len(rows)
        ok = np.zeros(n, bool)
        ok[have] = sig.ok
        hashes = np.zeros(n, np.uint64)
        hashes[have] = sig.hashes
        vectors = np.zeros((n, self.model.embed_dim), np.float32)
        vectors[have] = sig.vectors
        extra = np.zeros((n, len(self.views), self.model.embed_dim), np.float32)
        if self.views:
            extra[have] = sig.views
        digests = [""] * n
        for k, i in enumerate(have):
            digests[i] = sig.digests[k]
        reasons = ["no_image"] * n
        for k, i in enumerate(have):  # a failed image's reason as the in-process path counts it
            reasons[i] = "" if sig.ok[k] else decode(images[i])[1]
        return pa.table(
            {
                "key": [str(r.get("__key__")) for r in rows],
                "shard": [str(r.get("__url__") or "") for r in rows],
                "caption": [
                    r["txt"].decode("utf-8", errors="replace").strip() if isinstance(r.get("txt"), bytes) else ""
                    for r in rows
                ],
                "digest": digests,
                "phash": hashes.view(np.int64),
                "vector": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), self.model.embed_dim),
                "views": pa.FixedSizeListArray.from_arrays(extra.reshape(-1), extra.shape[1] * extra.shape[2])
                if self.views
                else pa.nulls(n),
                "reason": reasons,
            }
        )


def _sign_ray(urls: list[str], model: Embedder, views: tuple[str, ...] = ()) -> Corpus:
    """Ray Data: read_webdataset (decoder off, one block per shard), an actor pool of _Signer, rows back in order."""
    from pipelines.ray_env import init_local
    from wit_builder import storage

    ray = init_local()
    fs = storage.filesystem(urls[0])[0]
    paths = [storage.filesystem(u)[1] for u in urls]
    # one CPU stays free for the read tasks: actors holding every CPU would starve the reads that feed them
    cpus = ray.cluster_resources().get("CPU", 1)
    actors, actor_cpus = (max(1, int(cpus) - 1), 1) if cpus >= 2 else (1, cpus / 2)
    ds = ray.data.read_webdataset(paths, filesystem=fs, decoder=None, override_num_blocks=len(paths))
    ds = ds.map_batches(
        _Signer,
        fn_constructor_args=(ray.put(model), views),
        batch_size=BATCH,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
    )
    ctx = ds.context
    ctx.execution_options.preserve_order = True
    table = ds.to_arrow_refs()
    import pyarrow as pa

    merged = pa.concat_tables(ray.get(table)) if table else None
    if merged is None or merged.num_rows == 0:
        return Corpus([], [], [], Signatures.concat([], model.embed_dim, len(views)), {})
    reasons = merged.column("reason").to_pylist()
    skipped = Counter(r for r in reasons if r)
    keep = np.array([r != "no_image" for r in reasons])
    t = merged.filter(pa.array(keep))
    by_path = dict(zip(paths, urls))
    vectors = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    extra = None
    if views:
        flat = t.column("views").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        extra = flat.reshape(t.num_rows, len(views), model.embed_dim).astype(np.float32)
    sig = Signatures(
        t.column("digest").to_pylist(),
        t.column("phash").to_numpy().view(np.uint64),
        vectors.reshape(t.num_rows, model.embed_dim).astype(np.float32),
        np.array([r == "" for r in t.column("reason").to_pylist()]),
        {k: v for k, v in skipped.items() if k != "no_image"},
        extra,
    )
    shards = [by_path.get(p, p) for p in t.column("shard").to_pylist()]
    return Corpus(t.column("key").to_pylist(), shards, t.column("caption").to_pylist(), sig, dict(skipped))


def read_images(wanted: dict[str, set[str]]) -> dict[tuple[str, str], bytes]:
    """{(shard, key): image bytes} for the given keys of each shard (for thumbnails: one pass per shard)."""
    out: dict[tuple[str, str], bytes] = {}
    for url, keys in wanted.items():
        for s in iter_samples([url]):
            if s.key in keys and s.image is not None:
                out[(url, s.key)] = s.image
    return out
