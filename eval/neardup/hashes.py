"""The fast first tiers: exact byte identity (SHA-256) and the 64-bit perceptual hash (DCT pHash) with vectorised
Hamming search."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
from PIL import Image

from eval.neardup.images import to_rgb


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of the encoded bytes: the same file served twice."""
    return hashlib.sha256(data).hexdigest()


def phash(image: Image.Image) -> int:
    """imagehash's pHash of the image flattened onto white, as an unsigned 64-bit int (first bit most significant)."""
    bits = imagehash.phash(to_rgb(image)).hash.reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def hamming_matrix(query: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Q x R uint8 Hamming distances between two arrays of 64-bit hashes."""
    q = np.asarray(query, dtype=np.uint64).reshape(-1, 1)
    r = np.asarray(index, dtype=np.uint64).reshape(1, -1)
    return np.bitwise_count(q ^ r).astype(np.uint8)


def phash_matches(
    query_hashes: np.ndarray, index_hashes: np.ndarray, max_distance: int, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, index row, distance) of every pair within `max_distance`, by query then index; memory bounded by
    `chunk` query rows at a time."""
    index = np.asarray(index_hashes, dtype=np.uint64)
    query = np.asarray(query_hashes, dtype=np.uint64)
    rows, cols, dists = [], [], []
    for start in range(0, len(query), chunk):
        d = hamming_matrix(query[start : start + chunk], index)
        qi, ri = np.nonzero(d <= max_distance)
        rows.append(qi + start)
        cols.append(ri)
        dists.append(d[qi, ri])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64), np.concatenate(dists)
