"""Overlap index throughput: evaluation images per second (= queries/s) against N training-image embeddings, exact
(`IndexFlatIP`) against IVF-PQ, with build time, index memory and IVF-PQ's top-1 agreement with exact search.

    .venv/bin/python benchmarks/bench_overlap_index.py                       # N = 10k and 100k, 256-d (~1.5 min)
    .venv/bin/python benchmarks/bench_overlap_index.py --sizes 20000 --dim 512 --nprobe 32

Embeddings are synthetic, clustered like image embeddings (200 centres plus noise), L2-normalised. Of the queries,
half are near-duplicates of training vectors (what contamination looks like: small noise on a training embedding)
and half fresh draws from the same clusters. agree dup / agree fresh: fraction whose IVF-PQ top-1 is the exact top-1.
On fresh draws the exact top-1 is a near-tie among a cluster's many equally distant members, which PQ codes
cannot resolve; the overlap detector only needs the near-duplicates right.

Measured on the 2-core build machine (shared with other work at the time; default flags: 256-d, 1,000 queries,
nprobe 16; IVF-PQ 64 one-byte codes, nlist 256 at 10k (capped by 39 points per list) and 1,265 at 100k; 93 s in all):

        N   kind  build s  memory MB  bytes/vec  queries/s  agree dup  agree fresh
   10,000  exact     0.01       10.2       1024      3,273
   10,000  ivfpq    24.26        1.2        125     24,994      0.998        0.236
  100,000  exact     0.17      102.4       1024        391
  100,000  ivfpq    62.17        8.8         88     14,006      1.000        0.162

IVF-PQ's build is its k-means (coarse lists, then 64 sub-quantizers of 256 codes each), paid once per training set.

Projection to 400M training images (the paper's WIT), d = 768 (ViT-L/14), nprobe 16:
- memory per vector: exact 4*d = 3,072 B -> 1.23 TB; IVF-PQ m + 8 = 192 + 8 B (m = d/4 one-byte codes, an int64 id)
  -> 80 GB, plus 80k coarse centroids (4*sqrt(N)) x 3 KB = 0.25 GB. 512-d (ViT-B): 2,048 B vs 136 B per vector.
- time: exact scales with N*d: queries/s at N = 100k, 256-d divided by 4000 * 3 -> ~0.03 queries/s per such machine,
  i.e. days for a 10k-image evaluation set. IVF-PQ scans nprobe/nlist of the vectors plus nlist centroids, both
  proportional to sqrt(N): queries/s at 100k divided by sqrt(4000) ~ 63 and by 3 for d -> ~70 queries/s per machine,
  minutes for 10k images; memory (80 GB) is the constraint, so shard the index by training shard across machines and
  take the best hit per query.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # the repo root before benchmarks/
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import faiss
import numpy as np

from eval.overlap.index import IndexConfig, build_index


def clustered(n: int, dim: int, seed: int, centers: int = 200, noise: float = 0.3) -> np.ndarray:
    """n unit vectors: a shared set of cluster centres (fixed seed) plus per-vector Gaussian noise."""
    c = np.random.default_rng(1234).standard_normal((centers, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, centers, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries(train: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(near-duplicates of m/2 training vectors, m/2 fresh vectors from the same clusters)."""
    rng = np.random.default_rng(seed)
    dup = train[rng.integers(0, len(train), m // 2)] + 0.01 * rng.standard_normal((m // 2, train.shape[1]))
    dup = (dup / np.linalg.norm(dup, axis=1, keepdims=True)).astype(np.float32)
    return dup, clustered(m - m // 2, train.shape[1], seed + 1)


def bench(n: int, dim: int, n_queries: int, nprobe: int) -> list[dict]:
    """One row per index kind for N = n."""
    train = clustered(n, dim, seed=n)
    dup, fresh = queries(train, n_queries, seed=7)
    both = np.concatenate([dup, fresh])
    rows, exact_top1 = [], None
    for kind in ("exact", "ivfpq"):
        t = time.perf_counter()
        index = build_index(train, kind=kind, config=IndexConfig(nprobe=nprobe))
        build_s = time.perf_counter() - t
        index.search(both[:10])  # warm-up
        t = time.perf_counter()
        ids = index.search(both)[1][:, 0]
        search_s = time.perf_counter() - t
        nbytes = int(faiss.serialize_index(index.index).nbytes)
        row = {"N": n, "kind": kind, "build_s": build_s, "bytes": nbytes, "qps": len(both) / search_s}
        if exact_top1 is None:
            exact_top1 = ids
        else:
            row["agree_dup"] = float((ids[: len(dup)] == exact_top1[: len(dup)]).mean())
            row["agree_fresh"] = float((ids[len(dup) :] == exact_top1[len(dup) :]).mean())
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated training-set sizes N (IVF-PQ needs >= 9,984)"
    )
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--nprobe", type=int, default=16)
    args = parser.parse_args(argv)
    heads = ("N", "kind", "build s", "memory MB", "bytes/vec", "queries/s", "agree dup", "agree fresh")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (9, 6, 8, 10, 10, 10, 10, 12))))
    for n in (int(s) for s in args.sizes.split(",")):
        for r in bench(n, args.dim, args.queries, args.nprobe):
            agree = f"{r['agree_dup']:>10.3f} {r['agree_fresh']:>12.3f}" if "agree_dup" in r else ""
            print(
                f"{r['N']:>9,} {r['kind']:>6} {r['build_s']:>8.2f} {r['bytes'] / 1e6:>10.1f} {r['bytes'] / r['N']:>10.0f} "
                f"{r['qps']:>10,.0f} {agree}",
                flush=True,
            )


if __name__ == "__main__":
    main()
