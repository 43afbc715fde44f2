"""Within-corpus near-duplicate clusters (`wit dedup`): pairs of rows found by the three tiers of the detector (the
same bytes, pHash within a few bits, embedding cosine at or above the threshold among each row's top-k neighbours)
are joined with union-find; every cluster's representative is its first row (rows come in shard/key order).

The exact and pHash tiers find every pair (grouping by digest and hash, then a faiss binary range search over the
distinct hashes); the embedding tier sees each row's k nearest neighbours, so a row with more than k - 1 embedding
duplicates still joins them through their shared neighbours. Everything here is deterministic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eval.neardup.detector import Signatures, _hash_bytes

TIER_RANK = {"exact": 0, "phash": 1, "embedding": 2}  # the stronger evidence first
TopK = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # queries [m, d], k -> (cosine [m, k], row [m, k])


@dataclass(frozen=True)
class Link:
    """Rows `a` < `b` are duplicates by `tier` with `similarity` (1.0 exact, 1 - bits/64 pHash, cosine embedding)."""

    a: int
    b: int
    tier: str
    similarity: float


@dataclass
class Clusters:
    """Per row: its cluster id (0.. in order of the representatives; -1 for a row alone), the representative row,
    and the best link that ties it to its cluster (tier None and similarity nan for a row alone)."""

    cluster: np.ndarray  # int64 [n]
    representative: np.ndarray  # int64 [n]
    tier: list[str | None]
    similarity: np.ndarray  # float64 [n]
    partner: np.ndarray  # int64 [n]: the other row of the best link, -1 for a row alone

    def members(self) -> np.ndarray:
        """Rows in a cluster of two or more."""
        return np.nonzero(self.cluster >= 0)[0]

    def duplicates(self) -> np.ndarray:
        """Rows in a cluster that are not its representative (what --remove takes out)."""
        rows = np.arange(len(self.cluster))
        return rows[(self.cluster >= 0) & (self.representative != rows)]


def _link(i: int, j: int, tier: str, similarity: float) -> Link:
    return Link(min(i, j), max(i, j), tier, float(similarity))


def exact_links(digests: list[str]) -> list[Link]:
    """Every row with the same digest as an earlier row, linked to the first row with that digest."""
    first: dict[str, int] = {}
    links = []
    for i, digest in enumerate(digests):
        if not digest:
            continue
        j = first.setdefault(digest, i)
        if j != i:
            links.append(_link(j, i, "exact", 1.0))
    return links


def phash_links(hashes: np.ndarray, ok: np.ndarray, distance: int) -> list[Link]:
    """Pairs of readable rows whose pHashes differ in at most `distance` bits: rows with the same hash link to the
    first one; distinct hashes within range link their first rows (faiss binary range search)."""
    import faiss

    rows = np.nonzero(ok)[0]
    links: list[Link] = []
    first: dict[int, int] = {}
    for i in rows:
        j = first.setdefault(int(hashes[i]), int(i))
        if j != i:
            links.append(_link(j, int(i), "phash", 1.0))
    if len(first) < 2 or distance < 1:
        return links
    distinct = np.array(list(first), dtype=np.uint64)
    owner = np.array(list(first.values()), dtype=np.int64)
    index = faiss.IndexBinaryFlat(64)
    codes = _hash_bytes(distinct)
    index.add(codes)
    lims, dist, ids = index.range_search(codes, distance + 1)  # faiss keeps distances < radius
    for q in range(len(distinct)):
        for d, r in zip(dist[lims[q] : lims[q + 1]], ids[lims[q] : lims[q + 1]]):
            if r > q:
                links.append(_link(int(owner[q]), int(owner[r]), "phash", 1.0 - float(d) / 64))
    return links


def embedding_links(vectors: np.ndarray, ok: np.ndarray, search: TopK, threshold: float, k: int) -> list[Link]:
    """Pairs of readable rows where one is among the other's top-k neighbours with cosine >= `threshold`; `search`
    returns full-table row numbers (-1 for none)."""
    rows = np.nonzero(ok)[0]
    if len(rows) < 2 or not np.isfinite(threshold):
        return []
    sims, ids = search(vectors[rows], min(k, len(rows)))
    seen: dict[tuple[int, int], float] = {}
    for q, i in enumerate(rows):
        for s, j in zip(sims[q], ids[q]):
            if j < 0 or j == i or s < threshold:
                continue
            pair = (min(int(i), int(j)), max(int(i), int(j)))
            seen[pair] = max(seen.get(pair, -np.inf), float(s))
    return [Link(a, b, "embedding", s) for (a, b), s in sorted(seen.items())]


def numpy_topk(vectors: np.ndarray, ok: np.ndarray) -> TopK:
    """Exact top-k cosine search over the readable rows of `vectors` (small corpora and tests)."""
    rows = np.nonzero(ok)[0]
    refs = vectors[rows]

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cos = queries @ refs.T
        top = np.argsort(-cos, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(cos, top, axis=1), rows[top]

    return search


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def union_find(n: int, links: list[Link]) -> np.ndarray:
    """The root of each row after joining every link; a root is its component's smallest row."""
    parent = list(range(n))
    for link in links:
        a, b = _find(parent, link.a), _find(parent, link.b)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([_find(parent, i) for i in range(n)], dtype=np.int64)


def best_links(n: int, links: list[Link]) -> dict[int, Link]:
    """Per row, its strongest link: the lowest tier rank, then the highest similarity, then the smallest rows."""
    best: dict[int, Link] = {}
    for link in sorted(links, key=lambda x: (TIER_RANK[x.tier], -x.similarity, x.a, x.b)):
        best.setdefault(link.a, link)
        best.setdefault(link.b, link)
    return best


def assemble(n: int, links: list[Link]) -> Clusters:
    """Clusters of `n` rows from their links: ids numbered in order of the representatives."""
    root = union_find(n, links)
    sizes = np.bincount(root, minlength=n) if n else np.zeros(0, np.int64)
    multi = sizes[root] >= 2
    ids = {r: c for c, r in enumerate(sorted({int(r) for r in root[multi]}))}
    cluster = np.array([ids.get(int(r), -1) if m else -1 for r, m in zip(root, multi)], dtype=np.int64)
    best = best_links(n, links)
    tier = [best[i].tier if i in best else None for i in range(n)]
    similarity = np.array([best[i].similarity if i in best else np.nan for i in range(n)], dtype=np.float64)
    partner = np.array([(best[i].b if best[i].a == i else best[i].a) if i in best else -1 for i in range(n)])
    return Clusters(cluster, np.where(multi, root, np.arange(n)), tier, similarity, partner.astype(np.int64))


def find_links(
    signatures: Signatures, search: TopK | None, threshold: float, phash_distance: int, k: int = 10
) -> list[Link]:
    """Every link of the three tiers among the rows of `signatures` (`search` defaults to exact numpy)."""
    search = search or numpy_topk(signatures.vectors, signatures.ok)
    links = exact_links(signatures.digests)
    links += phash_links(signatures.hashes, signatures.ok, phash_distance)
    links += embedding_links(signatures.vectors, signatures.ok, search, threshold, k)
    return links


def clusters(
    signatures: Signatures, search_fn: TopK | None, threshold: float, phash_distance: int, k: int = 10
) -> Clusters:
    """Near-duplicate clusters of the rows of `signatures` (in shard/key order: the first row of a cluster is its
    representative)."""
    return assemble(len(signatures), find_links(signatures, search_fn, threshold, phash_distance, k))


def tier_counts(found: Clusters) -> dict[str, int]:
    """{tier: duplicates} over the rows --remove would take out, by the tier of their best link."""
    counts = {t: 0 for t in TIER_RANK}
    for i in found.duplicates():
        counts[found.tier[i]] += 1
    return counts
