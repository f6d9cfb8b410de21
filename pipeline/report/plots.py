"""The figures of a run and of a results folder, each a mean with its 95% interval (`interval_bars`) and, where there
are few, the units it averages as points. Drawn on `matplotlib.figure.Figure` objects, which need no backend: the
library never changes the one a notebook chose.

    write_run_plots(metrics, out_dir)     one run: prediction_mse.png, control[_ood]_returns.png, training_curves.png,
                                          learning_curve.png, or RL²'s plots
    write_paired_plot(summary, path)      several seeds: the paired control differences
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def interval_bars(axis: Axes, positions: Sequence[float], values: Sequence[dict], **style) -> object:
    """Means of `values` ({"mean", "ci95": [lo, hi]}) at `positions` with their intervals as error bars (an
    undefined bound, as for a single unit, draws no bar); returns the errorbar container."""
    means = [value["mean"] for value in values]
    below = [value["mean"] - value["ci95"][0] if math.isfinite(value["ci95"][0]) else 0.0 for value in values]
    above = [value["ci95"][1] - value["mean"] if math.isfinite(value["ci95"][1]) else 0.0 for value in values]
    return axis.errorbar(positions, means, yerr=[below, above], capsize=3, **style)


def _points(axis: Axes, position: float, units: Sequence[float], color: str | None = None) -> None:
    axis.scatter([position] * len(units), units, s=6, alpha=0.4, color=color)


def subplots(columns: int = 1, figsize: tuple[float, float] = (7, 4)) -> tuple[Figure, list[Axes]]:
    """A figure of `columns` axes side by side, with no pyplot state and no backend."""
    figure = Figure(figsize=figsize)
    return figure, list(figure.subplots(1, columns, squeeze=False)[0])


def save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


# ----------------------------------------------------------------------------- one run
def write_run_plots(metrics: dict, out_dir: Path) -> list[Path]:
    """The figures of one run's metrics.json, in `out_dir`."""
    if metrics.get("algo") == "rl2":
        written = [_rl2_training_plot(metrics, out_dir / "rl2_training.png")]
        if metrics["rl2"]:
            written.append(_rl2_returns_plot(metrics, out_dir / "rl2_returns.png"))
        return written
    written = [_prediction_plot(metrics, out_dir / "prediction_mse.png")] if metrics["prediction"] else []
    for key in ("control", "control_ood"):
        if key in metrics:
            written.append(_control_plot(metrics, key, out_dir / f"{key}_returns.png"))
    if metrics["training"]["curve"]:
        written.append(_training_plot(metrics, out_dir / "training_curves.png"))
    if metrics.get("learning_curve"):
        written.append(_learning_curve_plot(metrics, out_dir / "learning_curve.png"))
    return written


def _learning_curve_plot(metrics: dict, path: Path) -> Path:
    """Return against the environment steps trained on: tta on val tasks after each point's training, and the
    on-policy rows each round collected on training tasks before it."""
    figure, (axis,) = subplots()
    for index, (key, label) in enumerate((("val_return", "tta, val tasks"), ("onpolicy_return", "on-policy rows"))):
        points = [(row["env_steps"], row[key]) for row in metrics["learning_curve"] if key in row]
        if points:
            axis.plot(*zip(*points, strict=True), "-o", color=f"C{index}", label=label)
    axis.set(title=f"{metrics['env_name']}: learning curve", xlabel="environment steps", ylabel="return")
    axis.legend(fontsize=8)
    return save(figure, path)


def _training_plot(metrics: dict, path: Path) -> Path:
    """Each model's loss against the epoch, log y: the mean over the epoch's meta-batches (solid) and the loss on
    the val tasks' windows after the epoch (dashed)."""
    curve = metrics["training"]["curve"]
    figure, (axis,) = subplots()
    epochs = [row["epoch"] for row in curve]
    for index, name in enumerate(curve[0]["train"]):
        axis.plot(epochs, [row["train"][name] for row in curve], "-o", color=f"C{index}", label=f"{name} train")
        if "val" in curve[0]:
            axis.plot(epochs, [row["val"][name] for row in curve], "--s", color=f"C{index}", label=f"{name} val")
    axis.set(title=f"{metrics['env_name']}: training curves", xlabel="epoch", ylabel="loss", yscale="log")
    axis.legend(fontsize=8)
    return save(figure, path)


def _prediction_plot(metrics: dict, path: Path) -> Path:
    """MSE against k on a log scale: the mean with its interval and every task as a point."""
    splits = list(metrics["prediction"])
    figure, axes = subplots(len(splits), figsize=(5 * len(splits), 4))
    for axis, split in zip(axes, splits, strict=True):
        for offset, (learner, by_steps) in enumerate(metrics["prediction"][split].items()):
            steps = [int(k) for k in by_steps]
            x = np.arange(len(steps)) + 0.12 * (offset - 1)
            line = interval_bars(axis, x, list(by_steps.values()), marker="o", label=learner)
            for position, value in zip(x, by_steps.values(), strict=True):
                _points(axis, position, value["per_task"], line[0].get_color())
            axis.set_xticks(np.arange(len(steps)), [str(k) for k in steps])
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="adaptation steps k", ylabel="query MSE", yscale="log")
        axis.legend()
    return save(figure, path)


def _control_plot(metrics: dict, key: str, path: Path) -> Path:
    """Mean return per condition with its interval, and each task's mean as a point."""
    conditions = metrics[key]
    figure, (axis,) = subplots()
    for position, value in enumerate(conditions.values()):
        interval_bars(axis, [position], [value], fmt="o")
        _points(axis, position, value["per_task"])
    axis.set_xticks(range(len(conditions)), list(conditions))
    split = "test" if key == "control" else "OOD"
    axis.set(title=f"{metrics['env_name']}: episode return on {split} tasks", ylabel="return")
    return save(figure, path)


def _rl2_returns_plot(metrics: dict, path: Path) -> Path:
    """Return against the episode index of a trial: each policy's mean with its interval, each task as a point."""
    splits = list(metrics["rl2"])
    figure, axes = subplots(len(splits), figsize=(5 * len(splits), 4))
    for axis, split in zip(axes, splits, strict=True):
        for offset, (name, value) in enumerate(metrics["rl2"][split].items()):
            episodes = value["episode_returns"]
            x = np.arange(1, len(episodes) + 1) + 0.08 * (offset - 1)
            line = interval_bars(axis, x, episodes, marker="o", label=name)
            for position, returns in zip(x, episodes, strict=True):
                _points(axis, position, returns["per_task"], line[0].get_color())
        axis.set_xticks(np.arange(1, len(episodes) + 1))
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="episode of the trial", ylabel="return")
        axis.legend()
    return save(figure, path)


def _rl2_training_plot(metrics: dict, path: Path) -> Path:
    """Mean return of each episode index over an iteration's training trials, against environment steps."""
    figure, (axis,) = subplots()
    for name, curve in metrics["rl2_training"].items():
        steps = [row["env_steps"] for row in curve]
        for episode, returns in enumerate(zip(*(row["episode_returns"] for row in curve), strict=True)):
            axis.plot(steps, returns, label=f"{name} episode {episode + 1}")
    axis.set(title=f"{metrics['env_name']}: RL² training trials", xlabel="environment steps", ylabel="return")
    axis.legend()
    return save(figure, path)


# ----------------------------------------------------------------------------- several runs
def write_paired_plot(summary: dict, path: Path) -> Path | None:
    """The paired control differences of a summary: each pair's mean over seeds with its interval over seeds, each
    seed's mean as a point, and (faint, to the right) the interval over (seed, task) pairs. None without control."""
    keys = [key for key in ("control_paired", "control_ood_paired") if key in summary]
    if not keys:
        return None
    figure, axes = subplots(len(keys), figsize=(6 * len(keys), 4))
    for axis, key in zip(axes, keys, strict=True):
        pairs = summary[key]
        for position, value in enumerate(pairs.values()):
            seeds = value["over_seeds"]
            ci95 = seeds["ci95"] or [math.nan, math.nan]
            interval_bars(axis, [position], [{"mean": seeds["mean"], "ci95": ci95}], fmt="o", color="C0")
            _points(axis, position, seeds["per_seed"], "C0")
            interval_bars(axis, [position + 0.2], [value], fmt=".", color="grey", alpha=0.5)
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xticks(range(len(pairs)), list(pairs))
        split = "test" if key == "control_paired" else "OOD"
        axis.set(title=f"{summary['env_name']}: {split} tasks, {summary['n_seeds']} seeds", ylabel="return difference")
    figure.suptitle(
        "blue: mean and 95% CI over seeds, a point per seed; grey: 95% CI over (seed, task) pairs", fontsize=9
    )
    return save(figure, path)
