"""metrics.json sections and the console summary table."""

from __future__ import annotations

from pipeline.statistics import mean_and_ci95


def prediction_metrics(errors: dict[str, dict[str, dict]]) -> dict:
    """Per-window errors {split: {model: {"fresh"|"in_context": {k: [mse]}}}} -> "prediction" and "prediction_ci95".

    "prediction.<split>.<model>.<k>": query MSE after k steps, query started from init_hidden;
    "prediction.<split>.<model>_in_context.<k>": query started from the state reached on the support window.
    """
    means: dict = {}
    intervals: dict = {}
    for split, models in errors.items():
        means[split], intervals[split] = {}, {}
        for model, modes in models.items():
            for mode, suffix in (("fresh", ""), ("in_context", "_in_context")):
                summaries = {k: mean_and_ci95(values) for k, values in modes[mode].items()}
                means[split][model + suffix] = {k: mean for k, (mean, _) in summaries.items()}
                intervals[split][model + suffix] = {k: ci for k, (_, ci) in summaries.items()}
    return {"prediction": means, "prediction_ci95": intervals}


def summary_table(metrics: dict) -> str:
    """A plain-text table of the headline numbers."""
    windows = metrics["config"]["eval_windows_per_task"]
    lines = [f"{metrics['env_name']} (seed {metrics['seed']})",
             f"prediction MSE (normalised deltas), mean ± 95% CI over held-out windows ({windows} per task)"]
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
