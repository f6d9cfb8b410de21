"""PNG plots of a run: prediction error against adaptation steps, and control returns per condition."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def write_plots(metrics: dict, out_dir: Path) -> list[Path]:
    written = [_prediction_plot(metrics, out_dir / "prediction_mse.png")]
    if "control" in metrics:
        written.append(_control_plot(metrics, out_dir / "control_returns.png"))
    return written


def _prediction_plot(metrics: dict, path: Path) -> Path:
    splits = list(metrics["prediction"])
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        for model in ("maml", "erm"):
            steps = list(metrics["prediction"][split][model])
            means = [metrics["prediction"][split][model][k] for k in steps]
            errors = [metrics["prediction_ci95"][split][model][k] for k in steps]
            axis.errorbar([int(k) for k in steps], means, yerr=errors, marker="o", capsize=3, label=model.upper())
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="adaptation steps", ylabel="query MSE")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _control_plot(metrics: dict, path: Path) -> Path:
    returns = {name: value for name, value in metrics["control"].items() if isinstance(value, float)}
    intervals = metrics["control"]["ci95"]
    figure, axis = plt.subplots(figsize=(6, 4))
    names = list(returns)
    axis.bar(names, [returns[name] for name in names], yerr=[intervals.get(name, 0.0) for name in names], capsize=4)
    axis.set(title=f"{metrics['env_name']}: episode return on held-out tasks", ylabel="mean return")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
