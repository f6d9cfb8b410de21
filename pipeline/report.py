"""The console table of one run: the headline numbers of its metrics.json (model-based or RL²)."""

from __future__ import annotations


def format_interval(value: dict, digits: int) -> str:
    """ "mean [lo, hi]" of {"mean", "ci95": [lo, hi]} with `digits` decimals."""
    low, high = value["ci95"]
    return f"{value['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def run_table(metrics: dict) -> str:
    """A plain-text table of one run's headline numbers, mean [95% CI] over its tasks."""
    if metrics.get("algo") == "rl2":
        return _rl2_table(metrics)
    lines = [f"{metrics['env_name']} (seed {metrics['seed']})"]
    if not metrics["task_distribution"]:
        lines.append("warning: a single-task family: the held-out tasks have the training physics (new episodes only)")
    lines.append("prediction MSE (normalised deltas) after k adaptation steps, mean [95% CI] over tasks")
    for split, learners in metrics["prediction"].items():
        for learner, by_steps in learners.items():
            cells = "  ".join(f"k={k}: {format_interval(value, 4)}" for k, value in by_steps.items())
            lines.append(f"  {split:<16}{learner:<18}{cells}")
    for key, title in (("control", "held-out test tasks"), ("control_ood", "OOD tasks")):
        if key not in metrics:
            continue
        lines.append(f"control: mean episode return on {title}, mean [95% CI] over tasks")
        for condition, value in metrics[key].items():
            lines.append(f"  {condition:<16}{value['mean']:10.1f}  [{value['ci95'][0]:.1f}, {value['ci95'][1]:.1f}]")
    lines.append(f"total time: {metrics['timing']['total_s']:.0f} s")
    return "\n".join(lines)


def _rl2_table(metrics: dict) -> str:
    title = "RL² return per episode of a trial, mean [95% CI] over tasks"
    lines = [f"{metrics['env_name']} (seed {metrics['seed']}): {title}"]
    for split, by_policy in metrics["rl2"].items():
        for name, value in by_policy.items():
            cells = "  ".join(f"ep{e + 1}: {format_interval(r, 1)}" for e, r in enumerate(value["episode_returns"]))
            lines.append(f"  {split:<16}{name:<8}{cells}")
    lines.append(f"total time: {metrics['timing']['total_s']:.0f} s")
    return "\n".join(lines)
