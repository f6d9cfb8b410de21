"""Statistics, metrics sections, the console table and the plots of one run.

Intervals are 95% Student-t intervals of a mean over tasks (values of one task, its windows or its episodes,
are averaged first: they are not independent). Every section keeps its raw per-task values, so any other
statistic can be recomputed from metrics.json.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from pathlib import Path

import matplotlib
import numpy as np
from scipy import stats
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def progress_bar(items: Iterable, progress: bool, desc: str) -> Iterable:
    """A tqdm bar on a terminal; where output goes to a file or a CI log (no TTY), one line when it starts."""
    interactive = progress and sys.stderr.isatty()
    if progress and not interactive:
        print(desc, flush=True)
    return tqdm(items, desc=desc, disable=not interactive, leave=False)


def mean_and_ci95(values: list[float]) -> tuple[float, list[float]]:
    """Mean and the 95% Student-t interval [lo, hi] of the mean (nan bounds for fewer than two values)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean()) if array.size else float("nan")
    if array.size < 2:
        return mean, [float("nan"), float("nan")]
    half = float(stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return mean, [mean - half, mean + half]


def summary(per_task: list[float]) -> dict:
    """{"mean", "ci95": [lo, hi], "per_task"} over per-task values."""
    mean, ci95 = mean_and_ci95(per_task)
    return {"mean": mean, "ci95": ci95, "per_task": list(per_task)}


def condition_summary(episodes: list[list[float]]) -> dict:
    """Control returns: {"mean", "ci95", "per_task" (mean over a task's episodes), "episodes"}."""
    result = summary([float(np.mean(returns)) for returns in episodes])
    result["episodes"] = [list(returns) for returns in episodes]
    return result


def paired_difference(a: list[float], b: list[float]) -> dict:
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


def summary_table(metrics: dict) -> str:
    """A plain-text table of the headline numbers of one run."""
    lines = [f"{metrics['env_name']} (seed {metrics['seed']})"]
    if not metrics["task_distribution"]:
        lines.append("warning: a single-task family: the held-out tasks have the training physics (new episodes only)")
    lines.append("prediction MSE (normalised deltas) after k adaptation steps, mean [95% CI] over tasks")
    for split, learners in metrics["prediction"].items():
        for learner, by_steps in learners.items():
            cells = "  ".join(
                f"k={k}: {value['mean']:.4f} [{value['ci95'][0]:.4f}, {value['ci95'][1]:.4f}]"
                for k, value in by_steps.items()
            )
            lines.append(f"  {split:<16}{learner:<18}{cells}")
    for key, title in (("control", "held-out test tasks"), ("control_ood", "OOD tasks")):
        if key not in metrics:
            continue
        lines.append(f"control: mean episode return on {title}, mean [95% CI] over tasks")
        for condition, value in metrics[key].items():
            lines.append(f"  {condition:<16}{value['mean']:10.1f}  [{value['ci95'][0]:.1f}, {value['ci95'][1]:.1f}]")
    lines.append(f"total time: {metrics['timing']['total_s']:.0f} s")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def write_plots(metrics: dict, out_dir: Path) -> list[Path]:
    written = [_prediction_plot(metrics, out_dir / "prediction_mse.png")]
    for key in ("control", "control_ood"):
        if key in metrics:
            written.append(_control_plot(metrics, key, out_dir / f"{key}_returns.png"))
    return written


def _prediction_plot(metrics: dict, path: Path) -> Path:
    """MSE against k on a log scale: the mean with its interval and every task as a point."""
    splits = list(metrics["prediction"])
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        for offset, (learner, by_steps) in enumerate(metrics["prediction"][split].items()):
            steps = [int(k) for k in by_steps]
            x = np.arange(len(steps)) + 0.12 * (offset - 1)
            means = [value["mean"] for value in by_steps.values()]
            low = [
                value["mean"] - value["ci95"][0] if math.isfinite(value["ci95"][0]) else 0
                for value in by_steps.values()
            ]
            high = [
                value["ci95"][1] - value["mean"] if math.isfinite(value["ci95"][1]) else 0
                for value in by_steps.values()
            ]
            line = axis.errorbar(x, means, yerr=[low, high], marker="o", capsize=3, label=learner)
            for position, value in zip(x, by_steps.values(), strict=True):
                axis.scatter(
                    [position] * len(value["per_task"]), value["per_task"], s=6, alpha=0.4, color=line[0].get_color()
                )
            axis.set_xticks(np.arange(len(steps)), [str(k) for k in steps])
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="adaptation steps k", ylabel="query MSE", yscale="log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_interval(axis: plt.Axes, position: float, value: dict) -> None:
    """The mean of `value` ({"mean", "ci95": [lo, hi]}) at `position` with its interval as an error bar."""
    mean, (low, high) = value["mean"], value["ci95"]
    axis.errorbar([position], [mean], yerr=[[mean - low], [high - mean]], fmt="o", capsize=4)


def _control_plot(metrics: dict, key: str, path: Path) -> Path:
    """Mean return per condition with its interval, and each task's mean as a point."""
    conditions = metrics[key]
    figure, axis = plt.subplots(figsize=(7, 4))
    for position, value in enumerate(conditions.values()):
        plot_interval(axis, position, value)
        axis.scatter([position] * len(value["per_task"]), value["per_task"], s=8, alpha=0.4)
    axis.set_xticks(range(len(conditions)), list(conditions))
    split = "test" if key == "control" else "OOD"
    axis.set(title=f"{metrics['env_name']}: episode return on {split} tasks", ylabel="return")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
