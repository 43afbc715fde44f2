"""Dump counting throughput of the query pipeline: pages/s, compressed MB/s and peak memory for 1 and 2 Ray workers.

    .venv/bin/python benchmarks/bench_queries.py [--repeat 2] [--workers 1 2] [--streams-per-task 1]

Input: the real enwiki sample from the gensim wheel, re-packed as a multistream dump (the layout a full-scale run
uses): its pages, repeated --repeat times with fresh ids, in bz2 streams of 100 pages plus the index. Each row starts
a fresh local Ray cluster with that many CPUs and times the counting stage (read, parse with mwparserfromhell,
tokenise, partial counts written as Parquet); the DuckDB reduction is timed separately. Peak memory is the largest
resident set of the whole process tree (driver, raylet, workers) sampled every 0.1 s, and of one worker process.
The projection for the full English dump divides its compressed size by the measured per-core rate x 100 cores.
"""

from __future__ import annotations

import argparse
import bz2
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from xml.sax.saxutils import escape, quoteattr

from _proc import tree_rss  # noqa: E402 - benchmarks/ is on sys.path when run as a script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FULL_DUMP_BYTES = 22e9  # enwiki pages-articles-multistream.xml.bz2, about 22 GB
CLUSTER_CORES = 100


def repack(out_dir: str, repeat: int) -> tuple[str, int]:
    """Write the gensim sample's pages `repeat` times as a multistream dump + index; returns (path, pages)."""
    from wit_builder.paths import wiki_sample_path
    from wit_builder.queries import wikipedia

    stats: Counter = Counter()
    header: dict = {}
    with open(wiki_sample_path(), "rb") as handle:
        pages = list(wikipedia.iter_pages(handle, "sample.bz2", stats, header))
    raw = bz2.open(wiki_sample_path()).read(20000).decode()
    head = raw[: raw.index("</siteinfo>") + len("</siteinfo>")] + "\n"
    data = bytearray(bz2.compress(head.encode()))
    index = []
    all_pages = [(p, r) for r in range(repeat) for p in pages]
    for start in range(0, len(all_pages), 100):
        offset = len(data)
        chunk = []
        for page, r in all_pages[start : start + 100]:
            page_id = page.page_id + r * 10_000_000
            redirect = f"<redirect title={quoteattr(page.redirect)} />" if page.redirect is not None else ""
            chunk.append(
                f"<page><title>{escape(page.title)}</title><ns>{page.ns}</ns><id>{page_id}</id>{redirect}"
                f"<revision><text>{escape(page.text)}</text></revision></page>\n"
            )
            index.append(f"{offset}:{page_id}:{page.title}")
        data += bz2.compress("".join(chunk).encode())
    data += bz2.compress(b"</mediawiki>\n")
    path = os.path.join(out_dir, "bench-multistream.xml.bz2")
    with open(path, "wb") as handle:
        handle.write(data)
    with open(os.path.join(out_dir, "bench-multistream-index.txt.bz2"), "wb") as handle:
        handle.write(bz2.compress("\n".join(index).encode()))
    return path, len(all_pages)


class PeakMemory:
    def __init__(self) -> None:
        self.total = self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total, largest = tree_rss(os.getpid(), include_root_in_largest=False)
            self.total, self.worker = max(self.total, total), max(self.worker, largest)
            time.sleep(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(dump: str, workers: int, streams_per_task: int, work_root: str) -> dict:
    import ray

    from pipelines import ray_env
    from pipelines.build_queries import count_dump
    from wit_builder.queries import counts
    from wit_builder.queries.config import QueryConfig

    ray_env.apply()
    ray.init(
        address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, object_store_memory=300_000_000
    )
    try:
        ray.get([ray.remote(lambda: None).remote() for _ in range(workers)])  # workers up before the clock starts
        config = QueryConfig(streams_per_task=streams_per_task, workers=workers)
        work_dir = tempfile.mkdtemp(dir=work_root)
        index = dump[: -len(".xml.bz2")] + "-index.txt.bz2"
        with PeakMemory() as peak:
            start = time.perf_counter()
            stats = count_dump(ray, dump, index, work_dir, workers, config)
            counted = time.perf_counter() - start
        start = time.perf_counter()
        con = counts.connect(work_dir, "1GB")
        counts.reduce(con)
        reduced = time.perf_counter() - start
    finally:
        ray.shutdown()
    size = os.path.getsize(dump)
    return {
        "workers": workers,
        "pages": stats["pages_read"],
        "seconds": counted,
        "reduce_s": reduced,
        "pages_s": stats["pages_read"] / counted,
        "mb_s": size / 1e6 / counted,
        "peak_tree_mb": peak.total / 1e6,
        "peak_worker_mb": peak.worker / 1e6,
        "bytes": size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="copies of the sample's pages in the bench dump")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--streams-per-task", type=int, default=1)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-queries-")
    try:
        dump, pages = repack(root, args.repeat)
        print(
            f"dump: {pages:,} pages, {os.path.getsize(dump) / 1e6:.2f} MB bz2 (multistream), "
            f"{os.cpu_count()} CPUs on this machine",
            flush=True,
        )
        rows = [measure(dump, w, args.streams_per_task, root) for w in args.workers]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{'workers':>7} {'pages':>6} {'count s':>8} {'pages/s':>8} {'MB/s bz2':>9} {'reduce s':>9} "
        f"{'peak tree MB':>13} {'peak worker MB':>15}"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {r['pages']:>6,} {r['seconds']:>8.1f} {r['pages_s']:>8.1f} {r['mb_s']:>9.3f} "
            f"{r['reduce_s']:>9.2f} {r['peak_tree_mb']:>13.0f} {r['peak_worker_mb']:>15.0f}"
        )
    per_core = rows[0]["mb_s"] / rows[0]["workers"]
    hours = FULL_DUMP_BYTES / 1e6 / (per_core * CLUSTER_CORES) / 3600
    print(f"\nper-core rate (from the {rows[0]['workers']}-worker row): {per_core:.3f} MB/s of bz2")
    print(
        f"projection: full English dump ({FULL_DUMP_BYTES / 1e9:.0f} GB bz2) on {CLUSTER_CORES} cores: "
        f"{hours:.1f} h of counting (perfect scaling; the reduction and stragglers come on top)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
