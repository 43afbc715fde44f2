"""Memory of a process tree, read from /proc: what the benchmarks report as peak memory."""

from __future__ import annotations

import os


def tree_rss(root_pid: int, include_root_in_largest: bool = True) -> tuple[int, int]:
    """(sum of RSS over root_pid and its descendants, largest single RSS), in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
    total, largest, todo = 0, 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        if include_root_in_largest or pid != root_pid:
            largest = max(largest, rss.get(pid, 0))
        todo.extend(children.get(pid, []))
    return total, largest
