"""CPU time of a process tree, read from /proc (Linux): what the benchmarks add up for a
server with its workers, or a command with its fork server and sandboxed workers."""

from __future__ import annotations

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_table() -> tuple[dict[int, int], dict[int, float]]:
    """Every process's parent and its CPU seconds so far (user + system)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:                   # gone meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return parents, times


def in_tree(pid: int, root: int, parents: dict[int, int]) -> bool:
    """Whether ``pid`` is ``root`` or one of its descendants."""
    while pid in parents and pid != root and pid > 1:
        pid = parents[pid]
    return pid == root


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of ``root`` and all its descendants now."""
    parents, times = process_table()
    return sum(value for pid, value in times.items() if in_tree(pid, root, parents))
