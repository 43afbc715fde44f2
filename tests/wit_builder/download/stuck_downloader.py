"""A stand-in for SafeDownloader whose shards hang: importable by spawned pool workers (stdlib only, so they start
fast), and by value in Ray workers (register_pickle_by_value)."""

from __future__ import annotations

import os
import time


class StuckDownloader:
    """Shard s hangs (sleeps an hour) on its first `stuck[s]` attempts, then finishes; attempts are counted in files
    (each attempt may run in another process)."""

    def __init__(self, folder, stuck: dict[int, int]):
        self.folder, self.stuck = str(folder), stuck

    def run_shard(self, row):
        shard, _ = row
        path = os.path.join(self.folder, f"attempts-{shard}")
        with open(path, "a") as handle:
            handle.write(".")
        if os.path.getsize(path) <= self.stuck.get(shard, 0):
            time.sleep(3600)
        return None
