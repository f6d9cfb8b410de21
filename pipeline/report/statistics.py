"""Every statistic the pipeline reports: means with Student-t 95% intervals, paired differences, normalised scores.

One run, over its tasks (a task's windows or episodes are averaged first: they are not independent):
    mean_and_ci95(values)                 -> (mean, [lo, hi])
    task_summary(per_task)                -> {"mean", "ci95", "per_task"}
    episode_summary(episodes)             -> task_summary of each task's mean episode return, plus "episodes"
    paired_difference(a, b)               -> {"mean", "ci95", "n", "wins", "losses"} of a - b over the same units
Several seeds, `per_seed` = one list of per-task values per seed:
    pooled(per_seed)                      -> over the (seed, task) pairs, conditional on the trained models:
                                             {"mean", "ci95", "n", "per_seed", "over_seeds", "bootstrap_ci95"}
    paired_pooled(per_seed_a, per_seed_b) -> the same for a - b, with wins and losses (pairs, and seeds)
    over_seeds(per_seed)                  -> the training run as the unit: a Student-t interval over the seed means
    bootstrap_ci95(per_seed)              -> two-level percentile bootstrap: seeds, then tasks within each seed
    geometric_pooled(per_seed)            -> `pooled` on the log scale, back in the quantity's units: geometric
                                             means with intervals that stay positive (errors, MSE)
    ratio_pooled(per_seed_a, per_seed_b)  -> a / b as the geometric mean of per-pair ratios, paired on the log scale
    normalized_scores(values, low, high)  -> (R - mean R_low) / (mean R_high - mean R_low) per unit

A seed's tasks share its trained model, so claims rest on `over_seeds`; the pooled interval says how precisely
the trained models were measured, not how another training run would do.
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


BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
BOOTSTRAP = (
    f"two-level percentile bootstrap of the mean of seed means, {BOOTSTRAP_RESAMPLES} resamples (generator seed "
    f"{BOOTSTRAP_SEED}): seeds drawn with replacement, then each drawn seed's tasks drawn with replacement"
)


def over_seeds(per_seed: Sequence[Sequence[float]]) -> dict:
    """The training run as the unit: {"mean", "ci95" (Student-t over the n seed means, n - 1 degrees of freedom;
    None for one seed), "n" (seeds), "per_seed" (each seed's mean over its tasks)}."""
    means = [float(np.mean(values)) for values in per_seed]
    mean, ci95 = mean_and_ci95(means)
    return {"mean": mean, "ci95": ci95 if len(means) > 1 else None, "n": len(means), "per_seed": means}


def bootstrap_ci95(per_seed: Sequence[Sequence[float]]) -> list[float] | None:
    """The 95% percentile interval of the mean of seed means under the two-level bootstrap (`BOOTSTRAP`); None for
    one seed, where the seed level cannot be resampled. Seeds may hold different numbers of tasks.

    No library we depend on resamples two levels (scipy.stats.bootstrap and rliable resample one), hence the few
    lines below; the percentile interval is scipy's `method="percentile"`.
    """
    if len(per_seed) < 2:
        return None
    counts = np.array([len(values) for values in per_seed])  # (S,)
    padded = np.zeros((len(per_seed), counts.max()))  # (S, T_max)
    for row, values in enumerate(per_seed):
        padded[row, : len(values)] = values
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    seeds = rng.integers(0, len(per_seed), size=(BOOTSTRAP_RESAMPLES, len(per_seed)))  # (R, S)
    drawn_counts = counts[seeds]  # (R, S)
    tasks = np.floor(rng.random((*seeds.shape, counts.max())) * drawn_counts[..., None]).astype(int)  # (R, S, T_max)
    values = padded[seeds[..., None], tasks]  # (R, S, T_max)
    used = np.arange(counts.max()) < drawn_counts[..., None]  # a seed with fewer tasks draws fewer
    seed_means = np.where(used, values, 0.0).sum(-1) / drawn_counts  # (R, S)
    low, high = np.percentile(seed_means.mean(-1), [2.5, 97.5])
    return [float(low), float(high)]


SIGN_BOUNDED = "bootstrap percentile: the t interval crossed 0, which no value does"


def _crosses_a_bound(values: Sequence[float], bounds: list[float] | None) -> bool:
    """Every value has one sign (returns of a family whose rewards are all negative, say), yet `bounds` reach past
    0: a t interval outside what the quantity can be."""
    if bounds is None or not values:
        return False
    return (max(values) <= 0 < bounds[1]) or (min(values) >= 0 > bounds[0])


def pooled(per_seed: Sequence[Sequence[float]], sign_bounded: bool = False) -> dict:
    """Over (seed, task) pairs: {"mean", "ci95", "n", "per_seed"}, plus "over_seeds" and "bootstrap_ci95".

    `sign_bounded` (returns: a family whose rewards all have one sign keeps its returns on that side of 0): where
    every value has one sign and a t interval (over the pairs, or over seeds) reaches past 0, that interval is
    replaced by the percentile bootstrap's, which stays inside the values' range, and says so ("interval":
    `SIGN_BOUNDED`). The values' sign stands for the range: a family's reward bounds are not recorded."""
    values = [value for seed_values in per_seed for value in seed_values]
    mean, ci95 = mean_and_ci95(values)
    seeds, bootstrap = over_seeds(per_seed), bootstrap_ci95(per_seed)
    result = {
        "mean": mean,
        "ci95": ci95,
        "n": len(values),
        "per_seed": [sum(seed_values) / len(seed_values) for seed_values in per_seed],
        "over_seeds": seeds,
        "bootstrap_ci95": bootstrap,
    }
    if not sign_bounded:
        return result
    if _crosses_a_bound(values, seeds["ci95"]) and bootstrap is not None:
        result["over_seeds"] = {**seeds, "ci95": bootstrap, "interval": SIGN_BOUNDED}
    if _crosses_a_bound(values, ci95):
        resampled = percentile_ci95(values)
        result["ci95"], result["interval"] = resampled, SIGN_BOUNDED
    return result


def percentile_ci95(values: Sequence[float]) -> list[float]:
    """The 95% percentile bootstrap interval of the mean of `values` (one level: scipy.stats.bootstrap)."""
    result = stats.bootstrap(
        (np.asarray(values, dtype=np.float64),),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def paired_pooled(
    per_seed_a: Sequence[Sequence[float]], per_seed_b: Sequence[Sequence[float]], higher_is_better: bool
) -> dict:
    """`paired_difference` of a - b over (seed, task) pairs, plus "over_seeds" (with the seeds won and lost) and
    "bootstrap_ci95"; a win is a pair (a seed) where a is better."""
    differences = [
        [x - y for x, y in zip(seed_a, seed_b, strict=True)]
        for seed_a, seed_b in zip(per_seed_a, per_seed_b, strict=True)
    ]
    a = [value for values in per_seed_a for value in values]
    b = [value for values in per_seed_b for value in values]
    result = paired_difference(a, b)
    seeds = over_seeds(differences)
    seeds["wins"] = sum(mean > 0 for mean in seeds["per_seed"])
    seeds["losses"] = sum(mean < 0 for mean in seeds["per_seed"])
    if not higher_is_better:
        result["wins"], result["losses"] = result["losses"], result["wins"]
        seeds["wins"], seeds["losses"] = seeds["losses"], seeds["wins"]
    return {**result, "over_seeds": seeds, "bootstrap_ci95": bootstrap_ci95(differences)}


def _exp(value: float | list[float] | None) -> float | list[float] | None:
    if value is None:
        return None
    return [math.exp(bound) for bound in value] if isinstance(value, list) else math.exp(value)


def _on_log_scale(summary: dict, scale: str) -> dict:
    """A `pooled` or `paired_pooled` result of log values, its means and bounds taken back by exp; "scale" names
    what they became ("geometric": geometric means, "ratio": ratios of a to b; 1 is no difference)."""
    seeds = summary["over_seeds"]
    back = {
        **summary,
        "mean": _exp(summary["mean"]),
        "ci95": _exp(summary["ci95"]),
        "over_seeds": {
            **seeds,
            "mean": _exp(seeds["mean"]),
            "ci95": _exp(seeds["ci95"]),
            "per_seed": _exp(seeds["per_seed"]),
        },
        "bootstrap_ci95": _exp(summary["bootstrap_ci95"]),
        "scale": scale,
    }
    if "per_seed" in summary:
        back["per_seed"] = _exp(summary["per_seed"])
    return back


def _logs(per_seed: Sequence[Sequence[float]]) -> list[list[float]]:
    if any(not value > 0 for values in per_seed for value in values):
        raise ValueError("a geometric mean or a ratio needs positive values (errors), received one <= 0 or nan")
    return [[math.log(value) for value in values] for values in per_seed]


def geometric_pooled(per_seed: Sequence[Sequence[float]]) -> dict:
    """`pooled` of positive values (errors) on the log scale, in their units: every mean a geometric mean (of the
    tasks within a seed, of the seeds), every interval exp of the log-scale one, so it stays above 0."""
    return _on_log_scale(pooled(_logs(per_seed)), "geometric")


def ratio_pooled(per_seed_a: Sequence[Sequence[float]], per_seed_b: Sequence[Sequence[float]]) -> dict:
    """a / b of positive values (errors) paired per (seed, task), as `paired_pooled` of log a - log b taken back by
    exp: the geometric mean ratio and its intervals (1: no difference; a win is a pair where a is lower)."""
    return _on_log_scale(paired_pooled(_logs(per_seed_a), _logs(per_seed_b), higher_is_better=False), "ratio")


def normalized_scores(values: Sequence[float], low: Sequence[float], high: Sequence[float]) -> list[float] | None:
    """(R - mean R_low) / (mean R_high - mean R_low) per unit, e.g. between random actions and the true dynamics,
    the references averaged over the units (one trained seed's tasks): a unit where neither reference can do
    anything (a Pendulum task even the true dynamics cannot swing up) keeps the family's range instead of one near
    0 that would blow its score up. None where the two mean references tie: there is no range to place R in."""
    mean_low, mean_high = float(np.mean(low)), float(np.mean(high))
    if mean_high == mean_low:
        return None
    return [(value - mean_low) / (mean_high - mean_low) for value in values]
