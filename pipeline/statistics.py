"""Summaries of repeated measurements."""

from __future__ import annotations

import math

import torch


def mean_and_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the normal 95% interval of the mean (nan for fewer than two values)."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if len(values) < 2:
        return tensor.mean().item(), float("nan")
    return tensor.mean().item(), 1.96 * tensor.std().item() / math.sqrt(len(values))
