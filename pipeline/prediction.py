"""Prediction error on held-out windows after k adaptation steps on the preceding support window."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.ssm import SSM
from env_runner.segments import SegmentBatch
from meta_rl.meta_maml import MetaMAML

IN_CONTEXT_STEPS = (0, 1)


def window_errors(
    model: SSM, inner_lr: float, batch: SegmentBatch, steps: tuple[int, ...], inner_grad_clip: float | None = None
) -> dict[str, dict]:
    """Query MSE of every window of a per-task batch (n_tasks, W, ·) after k SGD steps on its support window.

    "fresh": the query starts from `init_hidden` (the MetaMAML convention). "in_context": the query starts
    from the state reached at the end of the support window, so the SSM's memory of the task is used too
    (k in IN_CONTEXT_STEPS). Returns {"fresh": {"k": [mse per window]}, "in_context": {...}}.
    """
    learner = MetaMAML(model, inner_lr=inner_lr, first_order=True, inner_grad_clip=inner_grad_clip)
    errors: dict[str, dict[str, list[float]]] = {
        "fresh": {str(k): [] for k in steps},
        "in_context": {str(k): [] for k in IN_CONTEXT_STEPS},
    }
    num_tasks, num_windows = batch.support_x.shape[:2]
    for task in range(num_tasks):
        for window in range(num_windows):
            index = (task, slice(window, window + 1))
            support_x, support_y = batch.support_x[index], batch.support_y[index]
            query_x, query_y = batch.query_x[index], batch.query_y[index]
            support_reset, query_reset = batch.support_reset[index], batch.query_reset[index]
            for k in sorted(set(steps) | set(IN_CONTEXT_STEPS)):
                params = learner.params() if k == 0 else learner.adapt_task(
                    support_x, support_y, num_steps=k, reset=support_reset
                )
                with torch.no_grad():
                    start = model.init_hidden(1)
                    if k in steps:
                        fresh, _ = learner.functional_forward(query_x, start, params, reset=query_reset)
                        errors["fresh"][str(k)].append(F.mse_loss(fresh, query_y).item())
                    if k in IN_CONTEXT_STEPS:
                        _, carried = learner.functional_forward(support_x, start, params, reset=support_reset)
                        in_context, _ = learner.functional_forward(query_x, carried, params, reset=query_reset)
                        errors["in_context"][str(k)].append(F.mse_loss(in_context, query_y).item())
    return errors



def select_finetune_lr(
    model: SSM, batch: SegmentBatch, candidates: tuple[float, ...], steps: tuple[int, ...],
    inner_grad_clip: float | None = None,
) -> float:
    """The learning rate among `candidates` with the lowest mean query MSE after `steps` (k > 0) on `batch`.

    Used to give the ERM baseline its own fine-tuning rate; `batch` must come from training tasks.
    """
    adapted_steps = tuple(k for k in steps if k > 0)
    scores = {}
    for lr in candidates:
        errors = window_errors(model, lr, batch, adapted_steps, inner_grad_clip)["fresh"]
        scores[lr] = sum(sum(values) / len(values) for values in errors.values())
    finite = {lr: score for lr, score in scores.items() if math.isfinite(score)}
    if not finite:
        raise RuntimeError(f"fine-tuning diverged at every candidate learning rate {candidates}")
    return min(finite, key=finite.get)
