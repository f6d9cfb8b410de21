"""torch's thread count following the machine's load: every core while no other process keeps one busy, fewer
while others do.

Two threads on two cores are the fastest setting for a lone run; beside another busy process the same two threads
wait at every parallel region for a partner that has lost its core, and one thread is 1.7-2.4x faster
(`docs/benchmarks.md`, section `shared`). A program turns this on for a block (`following_load(max_threads)`; the
command line does unless `--threads` fixes the count, or `--jobs` sends the runs to workers) and calls `tick()`
from its loops: at most once per `INTERVAL` seconds it reads how much CPU time other processes took on this
process's cores (Linux `/proc/stat` less this process's own time) and sets `torch.set_num_threads` to the cores
they leave free. The thread count changes speed, not numbers: the default Pendulum run writes the same floats at
one and two threads, and `tests/test_threads.py` compares a run at both. `tick()` is a no-op unless following, and
wherever `/proc/stat` is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

INTERVAL = 2.0  # seconds between two measurements
BUSY_FRACTION = 0.5  # a core counts as taken when other processes used more than half of it
PROC_STAT = Path("/proc/stat")


def usable_cores() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def busy_seconds(cores: list[int]) -> float | None:
    """CPU seconds every process together has spent on `cores` since boot (None without /proc/stat)."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{core}" for core in cores}
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:  # user nice system idle iowait irq softirq steal ...
            user, nice, system, _, _, irq, softirq = (int(value) for value in fields[:7])
            ticks += user + nice + system + irq + softirq
    return ticks / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


@dataclass
class LoadFollower:
    """Sets torch's threads to `max_threads` less the cores other processes keep busy (at least one)."""

    max_threads: int
    cores: list[int]
    last_wall: float
    last_busy: float
    last_own: float

    @classmethod
    def start(cls, max_threads: int) -> LoadFollower | None:
        cores = usable_cores()
        busy = busy_seconds(cores)
        if busy is None:
            return None
        return cls(max_threads, cores, time.monotonic(), busy, own_seconds())

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_wall < INTERVAL:
            return
        busy, own = busy_seconds(self.cores), own_seconds()
        if busy is None:
            return
        others = max(0.0, (busy - self.last_busy) - (own - self.last_own)) / (now - self.last_wall)  # cores in use
        taken = int(others + 1.0 - BUSY_FRACTION)  # cores counted as taken: round up from BUSY_FRACTION
        threads = max(1, min(self.max_threads, len(self.cores) - taken))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.last_wall, self.last_busy, self.last_own = now, busy, own


_follower: LoadFollower | None = None


@contextlib.contextmanager
def following_load(max_threads: int) -> Iterator[None]:
    """`follow_load(max_threads)` inside the block; afterwards the thread count it found, and no following."""
    before = torch.get_num_threads()
    follow_load(max_threads)
    try:
        yield
    finally:
        stop_following()
        torch.set_num_threads(before)


def follow_load(max_threads: int) -> None:
    """From now on let `tick()` choose torch's threads between 1 and `max_threads` (this process, its main thread)."""
    global _follower
    torch.set_num_threads(max_threads)
    _follower = LoadFollower.start(max_threads)


def stop_following() -> None:
    """`tick()` no longer changes the thread count."""
    global _follower
    _follower = None


def thread_limit() -> tuple[int, bool]:
    """(the most threads torch may use now, whether `tick()` follows the load below it)."""
    if _follower is not None:
        return _follower.max_threads, True
    return torch.get_num_threads(), False


def tick() -> None:
    """Re-measure the load and adjust the thread count, if `follow_load` is on and `INTERVAL` has passed."""
    if _follower is not None:
        _follower.tick()
