"""Training curves live in TensorBoard (`--tensorboard DIR`; the optional extra `.[tensorboard]`).

    log = CurveLog(DIR / "maml")      # a SummaryWriter's folder
    log(row)                          # every number of a curve row, at the row's step ("epoch" or "env_steps")

A row is what the training loops hand their `on_epoch` / `on_iteration` callbacks: nested dicts and lists of
numbers, each logged under its path ("train/maml", "episode_returns/2").
"""

from __future__ import annotations

import math
from pathlib import Path

TENSORBOARD_EXTRA = 'pip install -e ".[tensorboard]"'
STEP_KEYS = ("epoch", "env_steps", "iteration")  # the first a row holds is its step


def check_available() -> None:
    """RuntimeError naming the extra to install when TensorBoard is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as error:
        raise RuntimeError(f"--tensorboard needs TensorBoard, which is not installed: {TENSORBOARD_EXTRA}") from error


class CurveLog:
    """A TensorBoard writer for the rows of one training curve."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def __call__(self, row: dict) -> None:
        step = next(int(row[key]) for key in STEP_KEYS if key in row)
        for tag, value in scalars(row):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def scalars(row, prefix: str = "") -> list[tuple[str, float]]:
    """Every finite number of a nested row with its path, the step keys aside; list entries counted from 1."""
    if isinstance(row, dict):
        items = [(key, value) for key, value in row.items() if not (prefix == "" and key in STEP_KEYS)]
    elif isinstance(row, list):
        items = [(str(index + 1), value) for index, value in enumerate(row)]
    elif isinstance(row, (int, float)) and not isinstance(row, bool) and math.isfinite(row):
        return [(prefix, float(row))]
    else:
        return []
    return [pair for key, value in items for pair in scalars(value, f"{prefix}/{key}" if prefix else str(key))]
