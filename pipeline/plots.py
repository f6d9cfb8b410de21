"""Every figure the pipeline and its programs draw, headless (matplotlib's Agg backend), each a mean with its 95%
interval (`interval_bars`) and, where there are few, the units it averages as points.

    write_run_plots(metrics, out_dir)     one run: prediction_mse.png, control[_ood]_returns.png, or RL²'s plots
    write_paired_plot(summary, path)      several seeds: the paired control differences
    write_compute_sweep_plot(results, path)
    write_sample_cost_plot(result, path)     val return against environment steps, model-based and RL²
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def interval_bars(axis: plt.Axes, positions: Sequence[float], values: Sequence[dict], **style) -> object:
    """Means of `values` ({"mean", "ci95": [lo, hi]}) at `positions` with their intervals as error bars (an
    undefined bound, as for a single unit, draws no bar); returns the errorbar container."""
    means = [value["mean"] for value in values]
    below = [value["mean"] - value["ci95"][0] if math.isfinite(value["ci95"][0]) else 0.0 for value in values]
    above = [value["ci95"][1] - value["mean"] if math.isfinite(value["ci95"][1]) else 0.0 for value in values]
    return axis.errorbar(positions, means, yerr=[below, above], capsize=3, **style)


def _points(axis: plt.Axes, position: float, units: Sequence[float], color: str | None = None) -> None:
    axis.scatter([position] * len(units), units, s=6, alpha=0.4, color=color)


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
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
    return written


def _prediction_plot(metrics: dict, path: Path) -> Path:
    """MSE against k on a log scale: the mean with its interval and every task as a point."""
    splits = list(metrics["prediction"])
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        for offset, (learner, by_steps) in enumerate(metrics["prediction"][split].items()):
            steps = [int(k) for k in by_steps]
            x = np.arange(len(steps)) + 0.12 * (offset - 1)
            line = interval_bars(axis, x, list(by_steps.values()), marker="o", label=learner)
            for position, value in zip(x, by_steps.values(), strict=True):
                _points(axis, position, value["per_task"], line[0].get_color())
            axis.set_xticks(np.arange(len(steps)), [str(k) for k in steps])
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="adaptation steps k", ylabel="query MSE", yscale="log")
        axis.legend()
    return _save(figure, path)


def _control_plot(metrics: dict, key: str, path: Path) -> Path:
    """Mean return per condition with its interval, and each task's mean as a point."""
    conditions = metrics[key]
    figure, axis = plt.subplots(figsize=(7, 4))
    for position, value in enumerate(conditions.values()):
        interval_bars(axis, [position], [value], fmt="o")
        _points(axis, position, value["per_task"])
    axis.set_xticks(range(len(conditions)), list(conditions))
    split = "test" if key == "control" else "OOD"
    axis.set(title=f"{metrics['env_name']}: episode return on {split} tasks", ylabel="return")
    return _save(figure, path)


def _rl2_returns_plot(metrics: dict, path: Path) -> Path:
    """Return against the episode index of a trial: each policy's mean with its interval, each task as a point."""
    splits = list(metrics["rl2"])
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        for offset, (name, value) in enumerate(metrics["rl2"][split].items()):
            episodes = value["episode_returns"]
            x = np.arange(1, len(episodes) + 1) + 0.08 * (offset - 1)
            line = interval_bars(axis, x, episodes, marker="o", label=name)
            for position, returns in zip(x, episodes, strict=True):
                _points(axis, position, returns["per_task"], line[0].get_color())
        axis.set_xticks(np.arange(1, len(episodes) + 1))
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="episode of the trial", ylabel="return")
        axis.legend()
    return _save(figure, path)


def _rl2_training_plot(metrics: dict, path: Path) -> Path:
    """Mean return of each episode index over an iteration's training trials, against environment steps."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, curve in metrics["rl2_training"].items():
        steps = [row["env_steps"] for row in curve]
        for episode, returns in enumerate(zip(*(row["episode_returns"] for row in curve), strict=True)):
            axis.plot(steps, returns, label=f"{name} episode {episode + 1}")
    axis.set(title=f"{metrics['env_name']}: RL² training trials", xlabel="environment steps", ylabel="return")
    axis.legend()
    return _save(figure, path)


# ----------------------------------------------------------------------------- several runs
def write_paired_plot(summary: dict, path: Path) -> Path | None:
    """The paired control differences of a summary: each pair's mean over seeds with its interval over seeds, each
    seed's mean as a point, and (faint, to the right) the interval over (seed, task) pairs. None without control."""
    keys = [key for key in ("control_paired", "control_ood_paired") if key in summary]
    if not keys:
        return None
    figure, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
    for axis, key in zip(axes[0], keys, strict=True):
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
    return _save(figure, path)


def write_compute_sweep_plot(results: dict, path: Path, score) -> Path:
    """Score (`score(split_entry)` -> {"mean", ...}: normalised score or return) against multiply-adds per step,
    log x: a line per knob, val solid, test dashed, defaults ringed, values chosen on val starred."""
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, (knob, entry) in enumerate(results["knobs"].items()):
        color = f"C{index}"
        points = list(entry["values"].values())
        macs = [point["macs_per_step"] for point in points]
        for split, style, marker in (("val", "-", "o"), ("test", "--", "s")):
            means = [score(point[split])["mean"] for point in points]
            label = f"{knob} ({split})"
            axis.plot(macs, means, style, marker=marker, color=color, label=label, alpha=1.0 if split == "val" else 0.6)
            for point, x, y in zip(points, macs, means, strict=True):
                if point["default"]:
                    axis.scatter([x], [y], s=160, facecolors="none", edgecolors="black", zorder=3)
                if point["chosen"] and split == "val":
                    axis.scatter([x], [y], s=160, marker="*", color=color, edgecolors="black", zorder=4)
                if split == "val":
                    axis.annotate(str(point["value"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    has_score = any(
        point["val"]["normalized_score"] is not None
        for entry in results["knobs"].values()
        for point in entry["values"].values()
    )
    axis.scatter([], [], s=160, facecolors="none", edgecolors="black", label="default")
    axis.scatter([], [], s=160, marker="*", color="gray", edgecolors="black", label="chosen on val")
    axis.set(
        xscale="log",
        xlabel="multiply-adds per environment step",
        ylabel="normalised score (R - R_random) / (R_true - R_random)" if has_score else "episode return",
        title=f"{results['env_name']}: test-time compute (seeds {results['seeds']})",
    )
    axis.legend(fontsize=7, ncol=2)
    return _save(figure, path)


def write_sample_cost_plot(result: dict, path: Path) -> Path:
    """Val return against environment steps trained on (log x): the model-based "tta" first episode at each data
    budget (mean and 95% CI over seeds), and RL²'s val curve per episode of a trial (mean over seeds)."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    points = result["model_based"]
    steps = [float(np.mean(point["env_steps"])) for point in points]
    values = []
    for point in points:
        seeds = point["tta_return"]["over_seeds"]
        values.append({"mean": seeds["mean"], "ci95": seeds["ci95"] or [math.nan, math.nan]})
    interval_bars(axis, steps, values, fmt="o-", color="C0", label="model-based tta, first episode")
    if "rl2" in result:
        curve = result["rl2"]
        for index, episode in enumerate(curve["episode_returns"]):
            label = f"RL² {curve['policy']}, episode {episode['episode']}"
            axis.plot(curve["env_steps"], episode["mean"], color=f"C{index + 1}", label=label)
    axis.set(
        xscale="log",
        xlabel="environment steps trained on",
        ylabel="return on val tasks",
        title=f"{result['env_name']}: sample cost (seeds {', '.join(map(str, result['seeds']))})",
    )
    axis.legend(fontsize=8)
    return _save(figure, path)
