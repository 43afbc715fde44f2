"""Nearest training image of every evaluation image: a faiss index of L2-normalised embeddings searched by inner
product (cosine similarity). Exact (`IndexFlatIP`) up to `EXACT_MAX` vectors, IVF-PQ above it.

Why 200k: an exact index costs 4*d bytes per vector (200k x 768-d = 614 MB) and a query scans all of them; past that
IVF-PQ keeps m + 8 bytes per vector (PQ code + id) and scans only nprobe of its ~4*sqrt(n) lists."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import faiss
import numpy as np

from wit_builder.errors import WitError

EXACT_MAX = 200_000  # at most this many training vectors: exact search; above: IVF-PQ (see the module docstring)
KINDS = ("auto", "exact", "ivfpq")
_MIN_PER_CENTROID = 39  # faiss's minimum training points per k-means centroid


@dataclass(frozen=True)
class IndexConfig:
    """How an index is built: `exact_max` picks the kind under "auto"; IVF-PQ settings (sub-quantizers default to the
    largest divisor of d that is at most d/4, i.e. >= 4 dimensions per byte of code)."""

    exact_max: int = EXACT_MAX
    nprobe: int = 16
    pq_m: int | None = None
    pq_nbits: int = 8
    train_size: int = 200_000  # the coarse k-means sees at most this many vectors (a seeded sample)
    kmeans_iters: int = 10  # coarse and PQ k-means iterations (faiss's default 25 buys little and costs 2.5x)
    pq_points_per_centroid: int = 64  # PQ k-means sample: 64 x 256 codes = 16k vectors per sub-quantizer
    seed: int = 0


@dataclass
class ImageIndex:
    """A built index; ids are row numbers of the training features it was built from."""

    index: faiss.Index
    kind: str  # "exact" | "ivfpq"
    dim: int
    nprobe: int = 16

    @property
    def size(self) -> int:
        """Number of training vectors in the index."""
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-k training images of each query by cosine similarity: (similarities [m, k] float32, ids [m, k] int64).
        IVF-PQ similarities are approximations from the PQ codes."""
        if k < 1 or k > self.size:
            raise WitError(f"k must be between 1 and the index size {self.size}, got {k}")
        q = normalise(queries, self.dim, "queries")
        if self.kind == "ivfpq":
            self.index.nprobe = self.nprobe
        _use_all_cores()
        sims, ids = self.index.search(q, k)
        return sims.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

    def save(self, folder: str) -> None:
        """Write `index.faiss` and `index.json` (kind, dim, size, nprobe) into `folder` (created if missing)."""
        os.makedirs(folder, exist_ok=True)
        faiss.write_index(self.index, os.path.join(folder, "index.faiss"))
        meta = {"kind": self.kind, "dim": self.dim, "size": self.size, "nprobe": self.nprobe}
        with open(os.path.join(folder, "index.json"), "w") as f:
            json.dump(meta, f)


def load_index(folder: str) -> ImageIndex:
    """The index `ImageIndex.save` wrote into `folder`."""
    path, meta_path = os.path.join(folder, "index.faiss"), os.path.join(folder, "index.json")
    if not (os.path.isfile(path) and os.path.isfile(meta_path)):
        raise WitError(f"no overlap index under {folder}: build one and save it there first")
    with open(meta_path) as f:
        meta = json.load(f)
    return ImageIndex(faiss.read_index(path), meta["kind"], int(meta["dim"]), int(meta["nprobe"]))


def build_index(features: np.ndarray, kind: str = "auto", config: IndexConfig = IndexConfig()) -> ImageIndex:
    """Index the training-image embeddings (float32 [n, d], normalised here): exact when n <= config.exact_max or
    kind="exact", IVF-PQ when larger or kind="ivfpq"."""
    if kind not in KINDS:
        raise WitError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise WitError(f"the overlap index needs a non-empty [n, d] array of training embeddings, got shape {x.shape}")
    x = normalise(x, x.shape[1], "training embeddings")
    if kind == "auto":
        kind = "exact" if len(x) <= config.exact_max else "ivfpq"
    _use_all_cores()
    if kind == "exact":
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        return ImageIndex(index, "exact", x.shape[1], config.nprobe)
    return ImageIndex(_ivfpq(x, config), "ivfpq", x.shape[1], config.nprobe)


def ivfpq_shape(n: int, d: int, config: IndexConfig = IndexConfig()) -> tuple[int, int]:
    """(nlist, m) for n vectors of d dimensions: nlist ~ 4*sqrt(n), capped so k-means sees 39 points per list;
    m sub-quantizers dividing d."""
    nlist = max(1, min(round(4 * math.sqrt(n)), n // _MIN_PER_CENTROID))
    m = config.pq_m or max(q for q in range(1, max(1, d // 4) + 1) if d % q == 0)
    if d % m:
        raise WitError(f"pq_m={m} must divide the embedding dimension {d}")
    return nlist, m


def normalise(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Contiguous float32 rows of unit L2 norm; a wrong width or a non-finite value is the caller's error."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise WitError(f"{what} must be [n, {dim}], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise WitError(f"{what} contain NaN or infinite values: recompute the embeddings")
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


def _ivfpq(x: np.ndarray, config: IndexConfig) -> faiss.Index:
    n, d = x.shape
    if n < _MIN_PER_CENTROID * 2**config.pq_nbits:
        raise WitError(
            f"IVF-PQ needs at least {_MIN_PER_CENTROID * 2**config.pq_nbits} training vectors, got {n}: use kind='exact'"
        )
    nlist, m = ivfpq_shape(n, d, config)
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFPQ(quantizer, d, nlist, m, config.pq_nbits, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(config.seed)
    sample = x if n <= config.train_size else x[np.sort(rng.choice(n, config.train_size, replace=False))]
    index.cp.seed = index.pq.cp.seed = config.seed
    index.cp.niter = index.pq.cp.niter = config.kmeans_iters
    index.pq.cp.max_points_per_centroid = config.pq_points_per_centroid
    index.train(sample)
    index.add(x)
    return index


def _use_all_cores() -> None:
    faiss.omp_set_num_threads(len(os.sched_getaffinity(0)))
