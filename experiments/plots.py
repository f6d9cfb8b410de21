"""The figures of the programs that run many runs: the test-time compute curve, the planner choice and the sample
cost."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pipeline.report.plots import interval_bars, save, subplots


def write_compute_sweep_plot(results: dict, path: Path, score) -> Path:
    """Score (`score(split_entry)` -> {"mean", ...}: normalised score or return) against multiply-adds per step,
    log x: a line per knob, val solid, test dashed, defaults ringed, values chosen on val starred."""
    figure, (axis,) = subplots(figsize=(8, 5))
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
    return save(figure, path)


def write_sample_cost_plot(result: dict, path: Path) -> Path:
    """Val return against environment steps trained on (log x): the model-based "tta" first episode at each data
    budget (mean and 95% CI over seeds), and RL²'s val curve per episode of a trial (mean over seeds)."""
    figure, (axis,) = subplots(figsize=(7, 4.5))
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
    return save(figure, path)


def write_planner_choice_plot(results: dict, path: Path) -> Path:
    """Val return against model steps per environment step (log x): a line per planner (method, iCEM's exponent) and
    horizon, true dynamics solid and tta dashed in one colour per planner, random dotted, the chosen setting
    starred."""
    figure, (axis,) = subplots(figsize=(8, 5))
    planners = sorted({(e["method"], e["noise_exponent"] or 0.0) for e in results["settings"]})  # a colour each
    horizons = sorted({entry["horizon"] for entry in results["settings"]})
    markers = dict(zip(horizons, "osD^v<>", strict=False))
    for index, (method, beta) in enumerate(planners):
        name = f"{method} beta={beta:g}" if method == "icem" else method
        for horizon in horizons:
            points = [
                e
                for e in results["settings"]
                if (e["method"], e["noise_exponent"] or 0.0) == (method, beta) and e["horizon"] == horizon
            ]
            steps = [entry["model_steps"] for entry in points]
            for condition, style in (("true_dynamics", "-"), ("tta", "--")):
                if points[0][condition] is None:
                    continue
                label = f"{name}, H={horizon}, {condition}"
                means = [entry[condition]["mean"] for entry in points]
                axis.plot(steps, means, style, marker=markers[horizon], color=f"C{index}", label=label)
    chosen = results["settings"][results["chosen"]]
    axis.scatter(
        [chosen["model_steps"]],
        [chosen["tta"]["mean"]],
        s=200,
        marker="*",
        color="gold",
        zorder=4,
        edgecolors="black",
        label="chosen on val (tta)",
    )
    axis.axhline(results["random"]["mean"], linestyle=":", color="gray", label="random")
    axis.set(
        xscale="log",
        xlabel="model steps per environment step (sequences scored x horizon)",
        ylabel="val episode return",
        title=f"{results['env_name']}: planner compute (seeds {results['seeds']})",
    )
    axis.legend(fontsize=6, ncol=2)
    return save(figure, path)
