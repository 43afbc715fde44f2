"""Balancing: exact deduplication (dedup.py), the paper's hard cap per query (cap.py), MetaCLIP's sampling (metaclip.py).

Every random choice is a keyed hash of (seed, purpose, uid): the same rows win whatever the number of workers,
partitions or restarts, and a different --seed gives an independent draw.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa


def seeded_hash(uids, seed: int, purpose: str) -> np.ndarray:
    """A uint64 per uid: blake2b keyed with "<purpose>:<seed>", so every stage draws independently of the others."""
    key = f"{purpose}:{seed}".encode()
    if isinstance(uids, (pa.Array, pa.ChunkedArray)):
        uids = uids.to_pylist()
    out = np.empty(len(uids), dtype=np.uint64)
    for i, uid in enumerate(uids):
        out[i] = int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8, key=key).digest(), "little")
    return out
