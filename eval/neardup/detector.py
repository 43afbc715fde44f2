"""Three tiers for query images against reference images: the same bytes (SHA-256), the same perceptual hash
within a few bits, then the embedding's cosine at or above the calibrated threshold; brute force in numpy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eval.neardup.hashes import hamming_matrix, phash, sha256_hex
from eval.neardup.model import Embedder
from eval.neardup.train import Embeddings, decode_all, embed_pil

MAX_SIDE = 1024  # decoded images are shrunk to this before hashing and embedding (pHash works on 32x32 anyway)


@dataclass
class Match:
    """The best reference for one query: `tier` names the test that flagged it, None when nothing did (then
    `index` and `similarity` describe the nearest embedding, a near miss; both None for an unreadable query)."""

    index: int | None
    similarity: float | None
    tier: str | None


@dataclass
class _Encoded:
    digests: list[str]
    hashes: np.ndarray
    emb: Embeddings
    skipped: dict[str, int] = field(default_factory=dict)


class NearDuplicateDetector:
    """Holds the reference images' digests, pHashes and embeddings; `query` flags near-duplicates among them."""

    def __init__(self, model: Embedder, threshold: float, references: list[bytes], phash_distance: int = 4):
        self.model, self.threshold, self.phash_distance = model, float(threshold), int(phash_distance)
        self.refs = self._encode(references)
        self.sha_index: dict[str, int] = {}
        for i, d in enumerate(self.refs.digests):
            self.sha_index.setdefault(d, i)

    def _encode(self, images: list[bytes]) -> _Encoded:
        decoded, skipped = decode_all(images, MAX_SIDE)
        ok = np.array([im is not None for im in decoded], dtype=bool)
        hashes = np.array([phash(im) if im is not None else 0 for im in decoded], dtype=np.uint64)
        vectors = np.zeros((len(images), self.model.embed_dim), np.float32)
        if ok.any():
            vectors[ok] = embed_pil(self.model, [im for im in decoded if im is not None], self.model.image_size)
        return _Encoded([sha256_hex(d) for d in images], hashes, Embeddings(vectors, ok, skipped), skipped)

    def query(self, images: list[bytes]) -> list[Match]:
        """One Match per query image, checking tiers in order: exact, phash, embedding."""
        q = self._encode(images)
        ref_ok = self.refs.emb.ok
        dist = hamming_matrix(q.hashes, self.refs.hashes).astype(np.int16)
        dist[:, ~ref_ok] = 99
        cos = q.emb.vectors @ self.refs.emb.vectors.T
        cos[:, ~ref_ok] = -np.inf
        out: list[Match] = []
        for i, digest in enumerate(q.digests):
            if digest in self.sha_index:
                out.append(Match(self.sha_index[digest], 1.0, "exact"))
            elif not q.emb.ok[i] or not ref_ok.any():
                out.append(Match(None, None, None))
            elif dist[i].min() <= self.phash_distance:
                j = int(dist[i].argmin())
                out.append(Match(j, 1.0 - float(dist[i, j]) / 64, "phash"))
            else:
                j = int(cos[i].argmax())
                sim = float(cos[i, j])
                out.append(Match(j, sim, "embedding" if sim >= self.threshold else None))
        return out
