"""Prediction on held-out tasks: query MSE after k adaptation steps on the support window just before it.

Learners, all adapted the same way per window (restart from their own weights, k steps, query evaluated):
- "maml": the meta-learned world model with MetaMAML's inner step (`Adapter.from_meta`);
- "erm": the ERM model fine-tuned with the optimizer and rate chosen on val tasks' support -> query windows, among
  candidates that include no step at all (`NO_STEP`): on val tasks a fine-tuned baseline is never worse than itself
  unadapted;
- "oracle": the ERM model whose input also carries the task's coefficients, fine-tuned with a choice of its own made
  the same way.
Splits: "in_distribution" (test tasks) and "ood". Val tasks serve the selection only.

Beside the one-step query MSE, the open-loop error over the planner's horizon (`open_loop_errors`: the model fed its
own predictions, as the planner rolls it out), unadapted and after one step.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from adaptation.test_time_adaptation import AdaptationConfig, Adapter
from core import threads
from core.heads import OutputHead
from env_runner.segments import Normalizer, SegmentBatch
from pipeline.config import PipelineConfig
from pipeline.data import held_out_windows
from pipeline.report.statistics import task_summary
from pipeline.world import World

OPEN_LOOP_STEPS = (0, 1)  # adaptation steps the open-loop error is measured after
NO_STEP = ("none", 0.0)  # the candidate that leaves the model as trained; first, so that it wins a tie
FINE_TUNING_CANDIDATES = (
    NO_STEP,
    ("sgd", 0.05),
    ("sgd", 0.01),
    ("sgd", 0.002),
    ("adam", 1e-2),
    ("adam", 1e-3),
    ("adam", 1e-4),
)


def task_windows(batch: SegmentBatch, task: int, context: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, ...]]:
    """Each window of `task`: (support_x, support_y, query_x, query_y, support_reset, query_reset), each with a
    batch of one, the task's `context` row (the oracle's) appended to the inputs."""
    for window in range(batch.support_x.shape[1]):
        sx, sy, qx, qy = (
            t[task, window][None] for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        )
        s_reset, q_reset = batch.support_reset[task, window][None], batch.query_reset[task, window][None]
        if context is not None:
            sx, qx = (torch.cat([x, context[task].expand(*x.shape[:-1], -1)], dim=-1) for x in (sx, qx))
        yield sx, sy, qx, qy, s_reset, q_reset


def adapted_steps(adapter: Adapter, sx, sy, s_reset, steps: tuple[int, ...]) -> Iterator[int]:
    """From the adapter's reference weights, one step on the support at a time: yields each k in `steps` once the
    adapter has taken k steps."""
    adapter.reset()
    for k in range(max(steps) + 1):
        if k > 0:
            adapter.update_step(sx, sy, reset=s_reset)
        if k in steps:
            yield k


def window_errors(
    adapter: Adapter,
    batch: SegmentBatch,
    steps: tuple[int, ...],
    context: torch.Tensor | None = None,
    head: OutputHead | None = None,
) -> dict[str, list[float]]:
    """Per-task mean query MSE after each k in `steps`: {"k": [one value per task]}.

    Every window starts from the adapter's reference weights and takes max(steps) steps one at a time (the
    query is scored at each k on the way). `context` (n_tasks, K) is appended to the inputs (the oracle). `head`
    (default: plain outputs) gives the point prediction that is scored.
    """
    point = head.point if head is not None else (lambda prediction: prediction)
    errors: dict[str, list[float]] = {str(k): [] for k in steps}
    for task in range(batch.support_x.shape[0]):
        threads.tick()
        per_window: dict[str, list[float]] = {str(k): [] for k in steps}
        for sx, sy, qx, qy, s_reset, q_reset in task_windows(batch, task, context):
            for k in adapted_steps(adapter, sx, sy, s_reset, steps):
                prediction, _ = adapter.predict(qx, reset=q_reset)
                per_window[str(k)].append(F.mse_loss(point(prediction), qy).item())
        for k, values in per_window.items():
            errors[k].append(sum(values) / len(values))
    return errors


def open_loop_errors(
    adapter: Adapter,
    batch: SegmentBatch,
    steps: tuple[int, ...],
    normalizer: Normalizer,
    horizon: int,
    context: torch.Tensor | None = None,
    head: OutputHead | None = None,
) -> dict[str, list[float]]:
    """Per-task mean open-loop error over `horizon` query steps after each k in `steps`: {"k": [one per task]}.

    As the planner imagines: the state comes from the support window (real inputs), then the model runs on its own
    predictions from the query's first real observation, fed the query's real actions (`Normalizer.next_inputs`).
    The error at step h is the mean squared difference between the predicted and the real observation change since
    the query's start, in units of the training data's per-step change (its target std), over the observation
    entries; a window's error is its mean over h = 1..horizon. Windows whose query restarts an episode after its
    first step are left out, and so is a task left without windows (the same ones for every learner).
    """
    errors: dict[str, list[float]] = {str(k): [] for k in steps}
    obs_dim = normalizer.obs_dim
    point = head.point if head is not None else (lambda prediction: prediction)
    for task in range(batch.support_x.shape[0]):
        threads.tick()
        per_window: dict[str, list[float]] = {str(k): [] for k in steps}
        for sx, sy, qx, qy, s_reset, q_reset in task_windows(batch, task, context):
            if q_reset[0, 1:horizon].any():
                continue
            for k in adapted_steps(adapter, sx, sy, s_reset, steps):
                _, hidden = adapter.predict(sx, reset=s_reset)
                x, squared = qx[:, 0], []
                predicted_change = torch.zeros_like(qy[:, 0, :obs_dim])  # (1, obs_dim)
                for t in range(horizon):
                    output, hidden = adapter.predict(x, hidden, reset=q_reset[:, 0] if t == 0 else None)
                    y = point(output)  # (1, D_out)
                    predicted_change = predicted_change + y[:, :obs_dim]
                    real_change = qy[:, : t + 1, :obs_dim].sum(dim=1)
                    squared.append((predicted_change - real_change).square().mean().item())
                    if t + 1 < horizon:
                        x = normalizer.next_inputs(x, y, qx[:, t + 1])
                per_window[str(k)].append(sum(squared) / horizon)
        for k, values in per_window.items():
            if values:
                errors[k].append(sum(values) / len(values))
    return errors


def fine_tuner(
    model: torch.nn.Module, optimizer: str, learning_rate: float, config: PipelineConfig, head: OutputHead
) -> Adapter:
    """An Adapter that fine-tunes a copy of `model` one step per call on `head`'s loss, keeping its optimizer state
    (Adam); `NO_STEP` takes none (every call only evaluates)."""
    no_step = (optimizer, learning_rate) == NO_STEP
    settings = AdaptationConfig(
        learning_rate=config.inner_lr if no_step else learning_rate,  # unused without a step
        optimizer="sgd" if no_step else optimizer,
        num_steps=0 if no_step else 1,
        mode="accumulate",
        grad_clip_norm=config.inner_grad_clip,
    )
    return Adapter(copy.deepcopy(model), settings, loss_fn=head.loss)


def select_fine_tuning(
    model: torch.nn.Module,
    val_batch: SegmentBatch,
    config: PipelineConfig,
    head: OutputHead,
    context: torch.Tensor | None = None,
) -> tuple[str, float]:
    """The candidate (`FINE_TUNING_CANDIDATES`, no step included) with the lowest mean val query MSE over the k > 0
    of `eval_steps`; `context` (n_val, K): the val tasks' inputs for a context-conditioned model (the oracle)."""
    adapted = tuple(k for k in config.eval_steps if k > 0)
    if not adapted:
        return NO_STEP
    scores = {}
    for optimizer, rate in FINE_TUNING_CANDIDATES:
        tuned = fine_tuner(model, optimizer, rate, config, head)
        errors = window_errors(tuned, val_batch, adapted, context, head)
        scores[(optimizer, rate)] = sum(sum(values) / len(values) for values in errors.values())
    finite = {choice: score for choice, score in scores.items() if torch.isfinite(torch.tensor(score))}
    if not finite:
        raise RuntimeError(f"fine-tuning diverged on val tasks at every candidate {FINE_TUNING_CANDIDATES}")
    return min(finite, key=finite.get)


def fine_tuning_choices(world: World) -> dict[str, tuple[str, float]]:
    """Each fine-tuned baseline's (optimizer, rate), chosen on val tasks; without val tasks MetaMAML's inner step
    (SGD at inner_lr), as MetaMAML adapts."""
    models, config = world.models, world.config
    names = ["erm"] + (["oracle"] if models.oracle_model is not None else [])
    if world.val_windows is None:
        return {name: ("sgd", config.inner_lr) for name in names}
    baselines = {"erm": (models.erm_model, None)}
    if models.oracle_model is not None:
        baselines["oracle"] = (models.oracle_model, world.context(world.splits.val).to(config.device))
    return {
        name: select_fine_tuning(model, world.val_windows, config, models.head, context)
        for name, (model, context) in baselines.items()
    }


def maml_adapter(world: World) -> Adapter:
    """MetaMAML's inner step as an Adapter of a copy of the meta-learned model, one step per `update_step`."""
    return Adapter.from_meta(world.models.learner, AdaptationConfig(num_steps=1, mode="accumulate"))


def evaluate_prediction(world: World, progress: bool) -> dict:
    """Select the baselines' fine-tuning on val tasks, then score every learner on test and OOD tasks (read once)."""
    family, splits, models, config = world.family, world.splits, world.models, world.config
    steps = tuple(config.eval_steps)
    choices = fine_tuning_choices(world)
    sections, open_loop = {}, {}
    horizon = min(config.planner.horizon, config.query_len)
    for name, tasks in (("in_distribution", splits.test), ("ood", splits.ood)):
        if not tasks:
            continue
        batch = held_out_windows(family, tasks, tasks[0].split, world.normalizer, config, progress)
        erm = fine_tuner(models.erm_model, *choices["erm"], config, models.head)
        learners = {
            "maml": window_errors(maml_adapter(world), batch, steps, head=models.head),
            "erm": window_errors(erm, batch, steps, None, models.head),
        }
        if models.oracle_model is not None:
            oracle = fine_tuner(models.oracle_model, *choices["oracle"], config, models.head)
            context = world.context(tasks).to(config.device)
            learners["oracle"] = window_errors(oracle, batch, steps, context, models.head)
        sections[name] = {
            learner: {k: task_summary(values) for k, values in by_k.items()} for learner, by_k in learners.items()
        }
        open_loop[name] = {
            learner: {k: task_summary(values) for k, values in by_k.items() if values}
            for learner, by_k in open_loop_learners(world, choices, batch, tasks, horizon).items()
        }
    settings = {
        **{f"{name}_optimizer": choice[0] for name, choice in choices.items()},
        **{f"{name}_learning_rate": choice[1] for name, choice in choices.items()},
        "selected_on": "val" if splits.val else "nothing: no val tasks, so MetaMAML's inner step (SGD at inner_lr)",
        "windows_per_task": config.eval_windows_per_task,
        "open_loop_horizon": horizon,
    }
    return {"prediction": sections, "prediction_open_loop": open_loop, "prediction_settings": settings}


def open_loop_learners(
    world: World, choices: dict[str, tuple[str, float]], batch: SegmentBatch, tasks: list, horizon: int
) -> dict[str, dict[str, list[float]]]:
    """Each learner's open-loop error (`open_loop_errors`) at the planner's horizon, unadapted and after one step."""
    models, config, normalizer = world.models, world.config, world.normalizer
    steps = tuple(k for k in OPEN_LOOP_STEPS if k in config.eval_steps) or (0,)
    head = models.head
    erm = fine_tuner(models.erm_model, *choices["erm"], config, head)
    learners = {
        "maml": open_loop_errors(maml_adapter(world), batch, steps, normalizer, horizon, head=head),
        "erm": open_loop_errors(erm, batch, steps, normalizer, horizon, head=head),
    }
    if models.oracle_model is not None:
        oracle = fine_tuner(models.oracle_model, *choices["oracle"], config, head)
        context = world.context(tasks).to(config.device)
        learners["oracle"] = open_loop_errors(oracle, batch, steps, normalizer, horizon, context, head)
    return learners
