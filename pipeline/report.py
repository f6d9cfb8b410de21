"""metrics.json sections and the console summary table."""

from __future__ import annotations

import torch

from pipeline.statistics import mean_and_ci95


def prediction_metrics(errors: dict[str, dict[str, dict]], windows_per_task: int) -> dict:
    """Per-window errors {split: {model: {"fresh"|"in_context": {k: [mse]}}}} -> "prediction" and "prediction_ci95".

    "prediction.<split>.<model>.<k>": query MSE after k steps, query started from init_hidden;
    "prediction.<split>.<model>_in_context.<k>": query started from the state reached on the support window.
    The window errors (task-major, `windows_per_task` per task) are averaged per task first, so the 95%
    interval is over tasks (windows of one task are not independent).
    """
    means: dict = {}
    intervals: dict = {}
    for split, models in errors.items():
        means[split], intervals[split] = {}, {}
        for model, modes in models.items():
            for mode, suffix in (("fresh", ""), ("in_context", "_in_context")):
                summaries = {k: mean_and_ci95(_task_means(values, windows_per_task))
                             for k, values in modes[mode].items()}
                means[split][model + suffix] = {k: mean for k, (mean, _) in summaries.items()}
                intervals[split][model + suffix] = {k: ci for k, (_, ci) in summaries.items()}
    return {"prediction": means, "prediction_ci95": intervals}


def _task_means(window_values: list[float], windows_per_task: int) -> list[float]:
    return torch.tensor(window_values, dtype=torch.float64).reshape(-1, windows_per_task).mean(1).tolist()


def summary_table(metrics: dict) -> str:
    """A plain-text table of the headline numbers."""
    windows = metrics["config"]["eval_windows_per_task"]
    lines = [f"{metrics['env_name']} (seed {metrics['seed']})"]
    if not metrics["task_distribution"]:
        lines.append("warning: a single-task family: the held-out tasks have the training physics (new episodes only)")
    lines.append(f"prediction MSE (normalised deltas) on {windows} held-out windows per task, mean ± 95% CI over tasks")
    for split, models in metrics["prediction"].items():
        for model, by_steps in models.items():
            cells = "  ".join(
                f"k={k}: {mse:.4f} ± {metrics['prediction_ci95'][split][model][k]:.4f}" for k, mse in by_steps.items()
            )
            lines.append(f"  {split:<16}{model:<18}{cells}")
    if "control" in metrics:
        control = metrics["control"]
        lines.append(f"control: mean episode return on {len(control['per_task']['random'])} held-out test tasks "
                     "(± 95% CI over tasks)")
        for condition, value in control.items():
            if isinstance(value, float):
                lines.append(f"  {condition:<30}{value:10.1f} ± {control['ci95'][condition]:.1f}")
    lines.append(f"total time: {metrics['timing']['total_s']:.0f} s")
    return "\n".join(lines)
