"""Timing helpers shared by the benchmark sections: interleaved repeats, medians, ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in seconds of each candidate, measured round-robin.

    Every repeat runs each candidate once, in turn, so slow phases of a shared machine hit all of
    them alike; the median over repeats is returned.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def format_table(title: str, rows: list[tuple[str, float]], reference: str, unit: str = "ms") -> str:
    """A text table of median times with each row's ratio to the `reference` row."""
    scale = {"ms": 1e3, "us": 1e6, "s": 1.0}[unit]
    ref = dict(rows)[reference]
    lines = [title, f"  {'case':<44}{'median ' + unit:>14}  {'x ' + reference:>26}"]
    for name, seconds in rows:
        lines.append(f"  {name:<44}{seconds * scale:>14.3f}  {seconds / ref:>26.3f}")
    return "\n".join(lines)
