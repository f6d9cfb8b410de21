"""Every statistic the pipeline reports: means with Student-t 95% intervals, paired differences, normalised scores.

    mean_and_ci95(values)                 -> (mean, [lo, hi])
    task_summary(per_task)                -> {"mean", "ci95", "per_task"}          one run: over its tasks
    episode_summary(episodes)             -> task_summary of each task's mean episode return, plus "episodes"
    paired_difference(a, b)               -> {"mean", "ci95", "n", "wins", "losses"} of a - b over the same units
    pooled(per_seed)                      -> {"mean", "ci95", "n", "per_seed"}     over (seed, task) pairs
    paired_pooled(per_seed_a, per_seed_b) -> paired_difference over (seed, task) pairs, wins counted by `better`
    normalized_scores(values, low, high)  -> (R - R_low) / (R_high - R_low) per unit

A task's values (its windows, its episodes) are averaged before any interval: they are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_and_ci95(values: Sequence[float]) -> tuple[float, list[float]]:
    """Mean and the 95% Student-t interval [lo, hi] of the mean (nan bounds for fewer than two values)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean()) if array.size else float("nan")
    if array.size < 2:
        return mean, [float("nan"), float("nan")]
    half = float(stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return mean, [mean - half, mean + half]


def task_summary(per_task: Sequence[float]) -> dict:
    """{"mean", "ci95": [lo, hi], "per_task"} over one run's per-task values."""
    mean, ci95 = mean_and_ci95(per_task)
    return {"mean": mean, "ci95": ci95, "per_task": list(per_task)}


def episode_summary(episodes: Sequence[Sequence[float]]) -> dict:
    """Control returns, one list of episode returns per task: `task_summary` of each task's mean, and "episodes"."""
    result = task_summary([float(np.mean(returns)) for returns in episodes])
    result["episodes"] = [list(returns) for returns in episodes]
    return result


def per_task_means(values: Sequence[float], repeats: int) -> list[float]:
    """Task-major values with `repeats` per task (a task's episodes) -> one mean per task."""
    return [sum(values[i : i + repeats]) / repeats for i in range(0, len(values), repeats)]


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """a - b over the same units (tasks, or (seed, task) pairs): {"mean", "ci95", "n", "wins", "losses"}."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean, ci95 = mean_and_ci95(differences)
    return {
        "mean": mean,
        "ci95": ci95,
        "n": len(differences),
        "wins": sum(d > 0 for d in differences),
        "losses": sum(d < 0 for d in differences),
    }


def pooled(per_seed: Sequence[Sequence[float]]) -> dict:
    """Over (seed, task) pairs: {"mean", "ci95", "n", "per_seed": [mean of each seed's tasks]}."""
    values = [value for seed_values in per_seed for value in seed_values]
    mean, ci95 = mean_and_ci95(values)
    return {
        "mean": mean,
        "ci95": ci95,
        "n": len(values),
        "per_seed": [sum(seed_values) / len(seed_values) for seed_values in per_seed],
    }


def paired_pooled(
    per_seed_a: Sequence[Sequence[float]], per_seed_b: Sequence[Sequence[float]], higher_is_better: bool
) -> dict:
    """`paired_difference` of a - b over (seed, task) pairs; a win is a pair where a is better."""
    a = [value for values in per_seed_a for value in values]
    b = [value for values in per_seed_b for value in values]
    result = paired_difference(a, b)
    if not higher_is_better:
        result["wins"], result["losses"] = result["losses"], result["wins"]
    return result


def normalized_scores(values: Sequence[float], low: Sequence[float], high: Sequence[float]) -> list[float]:
    """(R - R_low) / (R_high - R_low) per unit, e.g. between random actions and the true dynamics (nan where the
    two references coincide: there is no range to place R in)."""
    return [(r - lo) / (hi - lo) if hi != lo else float("nan") for r, lo, hi in zip(values, low, high, strict=True)]
