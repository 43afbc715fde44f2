"""Three tiers for query images against reference images: the same bytes (SHA-256), the same perceptual hash
within a few bits, then the embedding's cosine at or above the calibrated threshold. `sign` computes what each tier
needs once per image; `match` runs the tiers (the embedding tier through any top-1 search: numpy here, faiss in the
overlap report). A reference can also be signed in extra views (`sign(views=REFERENCE_VIEWS)`: mirrored, grayscale,
zoomed-in crops, a wider margin) and a query then scores the best cosine over the reference's views, so a copy that is
one of those edits (or close to one) lines up with a view instead of relying on the embedder's invariance alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from eval.neardup.hashes import phash, sha256_hex
from eval.neardup.model import Embedder
from eval.neardup.train import decode_all, embed_pil

MAX_SIDE = 1024  # decoded images are shrunk to this before hashing and embedding (pHash works on 32x32 anyway)
TIERS = ("exact", "phash", "embedding")
Search = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # unit vectors [m, d] -> (cosine [m], row [m])
View = Callable[[Image.Image], Image.Image]


def _gray(image: Image.Image) -> Image.Image:
    out = image.convert("RGBA")
    gray = out.convert("L").convert("RGBA")
    gray.putalpha(out.getchannel("A"))
    return gray


def _crop(keep: float, ax: float, ay: float) -> View:
    """Keep `keep` of each side, the crop's free space split ax : 1 - ax horizontally (ay vertically)."""

    def view(image: Image.Image) -> Image.Image:
        w, h = image.size
        cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
        x, y = round((w - cw) * ax), round((h - ch) * ay)
        return image.crop((x, y, x + cw, y + ch))

    return view


def _margin(share: float) -> View:
    """A transparent margin of `share` of the side on every side."""

    def view(image: Image.Image) -> Image.Image:
        w, h = image.size
        mw, mh = round(w * share), round(h * share)
        canvas = Image.new("RGBA", (w + 2 * mw, h + 2 * mh), (0, 0, 0, 0))
        canvas.paste(image.convert("RGBA"), (mw, mh))
        return canvas

    return view


VIEWS: dict[str, View] = {
    "mirror": ImageOps.mirror,
    "gray": _gray,
    "zoom80": _crop(0.8, 0.5, 0.5),
    "zoom80-tl": _crop(0.8, 0.0, 0.0),
    "zoom80-tr": _crop(0.8, 1.0, 0.0),
    "zoom80-bl": _crop(0.8, 0.0, 1.0),
    "zoom80-br": _crop(0.8, 1.0, 1.0),
    "margin15": _margin(0.15),
}
# The extra views the benchmark measured best (docs/benchmarks.md): the copies the embedder matches worst are
# crop-and-zoom, padding, grayscale and mirrored ones.
REFERENCE_VIEWS = tuple(VIEWS)


@dataclass
class Match:
    """The best reference for one query: `tier` names the test that flagged it, None when nothing did (then
    `index` and `similarity` describe the nearest embedding, a near miss; both None for an unreadable query)."""

    index: int | None
    similarity: float | None
    tier: str | None


@dataclass
class Signatures:
    """Per image: SHA-256 of its bytes, 64-bit pHash and unit embedding; `ok` is False (zero hash and vector) for an
    image that could not be decoded, counted in `skipped` by reason."""

    digests: list[str]
    hashes: np.ndarray  # uint64 [n]
    vectors: np.ndarray  # float32 [n, d]
    ok: np.ndarray  # bool [n]
    skipped: dict[str, int] = field(default_factory=dict)
    views: np.ndarray | None = None  # float32 [n, v, d]: unit vectors of the extra views sign(views=...) made

    def __len__(self) -> int:
        return len(self.digests)

    @staticmethod
    def concat(parts: list[Signatures], dim: int, n_views: int = 0) -> Signatures:
        """One Signatures of several, rows in order, skip counts added (`n_views`: the views of an empty result)."""
        skipped: Counter = Counter()
        for p in parts:
            skipped.update(p.skipped)
        if not parts:
            views = np.zeros((0, n_views, dim), np.float32) if n_views else None
            return Signatures([], np.zeros(0, np.uint64), np.zeros((0, dim), np.float32), np.zeros(0, bool), {}, views)
        shapes = {None if p.views is None else p.views.shape[1] for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"Signatures.concat got parts signed with different views ({shapes})")
        return Signatures(
            [d for p in parts for d in p.digests],
            np.concatenate([p.hashes for p in parts]),
            np.concatenate([p.vectors for p in parts]),
            np.concatenate([p.ok for p in parts]),
            dict(skipped),
            None if shapes == {None} else np.concatenate([p.views for p in parts]),
        )


def sign(model: Embedder, images: list[bytes], views: Sequence[str] = ()) -> Signatures:
    """Signatures of encoded images (decoded once, shrunk to MAX_SIDE; a refused or broken image is a counted skip);
    with `views` (names in VIEWS) also the embeddings of those views of each image, in Signatures.views."""
    unknown = sorted(set(views) - set(VIEWS))
    if unknown:
        raise ValueError(f"unknown reference views {unknown}; known: {sorted(VIEWS)}")
    decoded, skipped = decode_all(images, MAX_SIDE)
    ok = np.array([im is not None for im in decoded], dtype=bool)
    hashes = np.array([phash(im) if im is not None else 0 for im in decoded], dtype=np.uint64)
    vectors = np.zeros((len(images), model.embed_dim), np.float32)
    extra = np.zeros((len(images), len(views), model.embed_dim), np.float32) if views else None
    usable = [im for im in decoded if im is not None]
    if usable:
        vectors[ok] = embed_pil(model, usable, model.image_size)
        for k, name in enumerate(views):
            extra[ok, k] = embed_pil(model, [VIEWS[name](im) for im in usable], model.image_size)
    return Signatures([sha256_hex(d) for d in images], hashes, vectors, ok, skipped, extra)


def best_cosine(queries: np.ndarray, vectors: np.ndarray, views: np.ndarray | None = None) -> np.ndarray:
    """[m, n] cosine of each query with each reference: with `views` [n, v, d] the best over the reference's own
    vector and its views."""
    cos = queries @ vectors.T
    for k in range(0 if views is None else views.shape[1]):
        np.maximum(cos, queries @ views[:, k].T, out=cos)
    return cos


def pair_similarity(refs: Signatures, queries: Signatures) -> np.ndarray:
    """[n] cosine of pair i (refs[i], queries[i]): the query's vector against the reference's vector and its views
    (the score `match` thresholds, for calibrating a multi-view detector); NaN where either is unreadable."""
    cos = (refs.vectors * queries.vectors).sum(axis=1)
    if refs.views is not None:
        cos = np.maximum(cos, np.einsum("nvd,nd->nv", refs.views, queries.vectors).max(axis=1, initial=-np.inf))
    return np.where(refs.ok & queries.ok, cos, np.nan)


def index_rows(refs: Signatures) -> tuple[np.ndarray, np.ndarray]:
    """What a top-1 vector index over `refs` holds: the readable references' vectors, each followed by its views
    when they were signed in views, and the reference row of every indexed vector (top-1 over them is then the best
    cosine over each reference's views, as best_cosine computes it)."""
    rows = np.nonzero(refs.ok)[0]
    if refs.views is None:
        return refs.vectors[rows], rows
    stacked = np.concatenate([refs.vectors[rows][:, None], refs.views[rows]], axis=1)
    return stacked.reshape(-1, refs.vectors.shape[1]), np.repeat(rows, stacked.shape[1])


def numpy_search(vectors: np.ndarray, ok: np.ndarray, views: np.ndarray | None = None) -> Search:
    """Exact top-1 cosine search over the rows of `vectors` where `ok` (with `views`, the best over each row's views)."""

    def search(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cos = best_cosine(queries, vectors, views)
        cos[:, ~ok] = -np.inf
        best = cos.argmax(axis=1)
        return cos[np.arange(len(queries)), best], best

    return search


def phash_search(hashes: np.ndarray, ok: np.ndarray) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Nearest reference pHash of each query hash by Hamming distance (faiss's binary flat index: 8 bytes per image);
    returns (distance [m], reference row [m]); only `ok` references take part."""
    import faiss

    rows = np.nonzero(ok)[0]
    index = faiss.IndexBinaryFlat(64)
    if rows.size:
        index.add(_hash_bytes(hashes[rows]))

    def search(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not rows.size or not len(queries):
            return np.full(len(queries), 65, np.int64), np.zeros(len(queries), np.int64)
        dist, ids = index.search(_hash_bytes(queries), 1)
        return dist[:, 0].astype(np.int64), rows[ids[:, 0]]

    return search


def _hash_bytes(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes as the [n, 8] uint8 codes faiss's binary indexes take (big-endian: bit order is irrelevant to
    Hamming distance as long as queries and references agree)."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=">u8").view(np.uint8).reshape(-1, 8))


def match(
    query: Signatures,
    refs: Signatures,
    threshold: float,
    phash_distance: int = 4,
    search: Search | None = None,
    hash_search=None,
) -> list[Match]:
    """One Match per query image, checking tiers in order: exact bytes, pHash within `phash_distance` bits, then the
    embedding's cosine >= `threshold`. `search`/`hash_search` default to exact ones over `refs` (and its views)."""
    search = search or numpy_search(refs.vectors, refs.ok, refs.views)
    hash_search = hash_search or phash_search(refs.hashes, refs.ok)
    by_digest: dict[str, int] = {}
    for i, d in enumerate(refs.digests):
        by_digest.setdefault(d, i)
    readable = np.nonzero(query.ok)[0]
    out: list[Match] = [Match(None, None, None)] * len(query)
    if readable.size and refs.ok.any():
        dist, hash_row = hash_search(query.hashes[readable])
        cos, emb_row = search(query.vectors[readable])
        for k, i in enumerate(readable):
            if dist[k] <= phash_distance:
                out[i] = Match(int(hash_row[k]), 1.0 - float(dist[k]) / 64, "phash")
            else:
                sim = float(cos[k])
                out[i] = Match(int(emb_row[k]), sim, "embedding" if sim >= threshold else None)
    for i, digest in enumerate(query.digests):
        if digest in by_digest:
            out[i] = Match(by_digest[digest], 1.0, "exact")
    return out


class NearDuplicateDetector:
    """Holds the reference images' signatures; `query` flags near-duplicates among them (brute force, in memory).
    With `views` (e.g. REFERENCE_VIEWS) references are also signed in those views and a query's similarity is the
    best over them: calibrate its threshold on `pair_similarity` scores of references signed in the same views."""

    def __init__(
        self,
        model: Embedder,
        threshold: float,
        references: list[bytes],
        phash_distance: int = 4,
        views: Sequence[str] = (),
    ):
        self.model, self.threshold, self.phash_distance = model, float(threshold), int(phash_distance)
        self.refs = sign(model, references, views)
        self._search = numpy_search(self.refs.vectors, self.refs.ok, self.refs.views)
        self._hash_search = phash_search(self.refs.hashes, self.refs.ok)

    def query(self, images: list[bytes]) -> list[Match]:
        """One Match per query image, checking tiers in order: exact, phash, embedding."""
        return match(
            sign(self.model, images), self.refs, self.threshold, self.phash_distance, self._search, self._hash_search
        )
