"""Near-duplicate clusters on constructed signatures: exact counts per tier, transitivity, the first row as the
representative, the threshold and pHash distance edges, top-k through faiss equal to numpy, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from eval.neardup.dedup import (
    assemble,
    clusters,
    exact_links,
    numpy_topk,
    phash_links,
    tier_counts,
)
from eval.neardup.detector import Signatures
from eval.overlap.index import build_index


def unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make(digests, hashes, vectors, ok=None) -> Signatures:
    n = len(digests)
    ok = np.ones(n, bool) if ok is None else np.asarray(ok, bool)
    return Signatures(list(digests), np.asarray(hashes, np.uint64), np.asarray(vectors, np.float32), ok)


def orthogonal(n, d=16):
    """n unit vectors with cosine 0 between each pair."""
    return np.eye(d, dtype=np.float32)[:n]


def spread_hashes(n):
    """n random 64-bit hashes, every two at least 10 bits apart."""
    hashes = np.random.default_rng(n).integers(0, 2**63, n, dtype=np.int64).astype(np.uint64).tolist()
    assert min(bin(a ^ b).count("1") for i, a in enumerate(hashes) for b in hashes[:i]) >= 10
    return hashes


def test_each_tier_links_exactly_its_planted_pairs():
    n = 8
    hashes = spread_hashes(n)
    digests = [f"d{i}" for i in range(n)]
    vectors = orthogonal(n)
    digests[5] = digests[1]  # exact: 1 ~ 5
    hashes[6] = hashes[2] ^ 0b1011  # pHash 3 bits apart: 2 ~ 6
    vectors[7] = vectors[3] * 0.96 + vectors[4] * 0.28  # cosine 0.96 with row 3, 0.28 with row 4
    found = clusters(make(digests, hashes, vectors), None, threshold=0.9, phash_distance=4)
    assert found.cluster.tolist() == [-1, 0, 1, 2, -1, 0, 1, 2]
    assert found.representative.tolist() == [0, 1, 2, 3, 4, 1, 2, 3]
    assert found.duplicates().tolist() == [5, 6, 7]
    assert found.tier == [None, "exact", "phash", "embedding", None, "exact", "phash", "embedding"]
    assert found.similarity[6] == pytest.approx(1 - 3 / 64)
    assert found.similarity[7] == pytest.approx(0.96, abs=1e-5)
    assert tier_counts(found) == {"exact": 1, "phash": 1, "embedding": 1}
    assert found.partner.tolist() == [-1, 5, 6, 7, -1, 1, 2, 3]


def test_chains_are_transitive_and_the_first_row_represents_them():
    # 4 ~ 2 by bytes, 2 ~ 0 by pHash, 0 ~ 3 by embedding; 1 alone: one cluster {0, 2, 3, 4}, representative 0
    digests = ["a", "b", "c", "d", "c"]
    hashes = spread_hashes(5)
    hashes[2] = hashes[0] ^ 1
    vectors = orthogonal(5)
    vectors[3] = vectors[0] * 0.99 + vectors[1] * np.sqrt(1 - 0.99**2)
    found = clusters(make(digests, hashes, vectors), None, threshold=0.95, phash_distance=4)
    assert found.cluster.tolist() == [0, -1, 0, 0, 0]
    assert found.representative.tolist() == [0, 1, 0, 0, 0]
    assert found.duplicates().tolist() == [2, 3, 4]
    assert [found.tier[i] for i in (2, 3, 4)] == ["exact", "embedding", "exact"]  # 2's best link: the bytes


def test_threshold_and_phash_distance_are_inclusive_edges():
    vectors = orthogonal(4)
    vectors[1] = vectors[0] * 0.8 + vectors[2] * 0.6  # cosine exactly 0.8 with row 0
    hashes = spread_hashes(4)
    hashes[3] = hashes[2] ^ 0b1111  # 4 bits apart
    sig = make(["a", "b", "c", "d"], hashes, vectors)
    assert clusters(sig, None, threshold=0.8, phash_distance=4).duplicates().tolist() == [1, 3]
    assert clusters(sig, None, threshold=0.8001, phash_distance=4).duplicates().tolist() == [3]
    assert clusters(sig, None, threshold=0.8001, phash_distance=3).duplicates().tolist() == []
    assert clusters(sig, None, threshold=float("inf"), phash_distance=0).duplicates().tolist() == []


def test_unreadable_rows_join_only_by_bytes():
    digests = ["x", "x", "y", "z"]
    sig = make(digests, [0, 0, 0, 0], np.zeros((4, 4)), ok=[False, False, False, True])
    found = clusters(sig, None, threshold=-1.0, phash_distance=64)
    assert found.cluster.tolist() == [0, 0, -1, -1]
    assert tier_counts(found) == {"exact": 1, "phash": 0, "embedding": 0}


def test_groups_of_identical_hashes_and_digests_link_every_row():
    assert [(x.a, x.b) for x in exact_links(["a", "b", "a", "a", "", ""])] == [(0, 2), (0, 3)]
    links = phash_links(np.array([7, 7, 7, 5, 1 << 40], np.uint64), np.ones(5, bool), 1)
    assert sorted((x.a, x.b, x.similarity) for x in links) == [(0, 1, 1.0), (0, 2, 1.0), (0, 3, 1 - 1 / 64)]


def test_many_copies_beyond_k_still_form_one_cluster():
    rng = np.random.default_rng(0)
    base = unit(rng, 1, 32)
    copies = base + 0.01 * unit(rng, 30, 32)  # 30 near-identical rows, k = 5
    others = unit(rng, 40, 32)
    vectors = np.concatenate([others[:20], copies, others[20:]])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sig = make([f"d{i}" for i in range(70)], spread_hashes(70), vectors)
    found = clusters(sig, None, threshold=0.99, phash_distance=0, k=5)
    assert found.members().tolist() == list(range(20, 50))
    assert set(found.representative[20:50].tolist()) == {20}
    assert len(found.duplicates()) == 29


def test_faiss_topk_gives_the_numpy_clusters_and_is_deterministic():
    rng = np.random.default_rng(1)
    vectors = unit(rng, 60, 16)
    vectors[30:40] = vectors[:10] + 0.05 * unit(rng, 10, 16)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ok = np.ones(60, bool)
    ok[5] = False
    sig = make([f"d{i}" for i in range(60)], spread_hashes(60), vectors, ok)
    rows = np.nonzero(ok)[0]
    index = build_index(vectors[rows])

    def search(q, k):
        sims, ids = index.search(q, k)
        return sims, np.where(ids >= 0, rows[np.maximum(ids, 0)], -1)

    a = clusters(sig, search, 0.95, 0)
    b = clusters(sig, numpy_topk(vectors, ok), 0.95, 0)
    assert a.cluster.tolist() == b.cluster.tolist() == clusters(sig, search, 0.95, 0).cluster.tolist()
    assert a.duplicates().tolist() == [r for r in range(30, 40) if r != 35]  # row 5 is unreadable: 35 stays
    assert assemble(0, []).members().tolist() == []
