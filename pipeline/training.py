"""Meta-training: the epoch loop over the world models (`pipeline.models`), with on-policy rounds, and the
checkpoint after each epoch that makes a run resumable (ending with exactly the weights of an uninterrupted
run). A meta-batch holds `meta_batch_size` training tasks with `windows_per_task` (support, query) pairs each.

The training curve has a row per epoch: {"epoch", "train": {model: mean loss over the epoch's meta-batches},
"val": {model: the same loss on the val tasks' windows, without a step}, "env_steps": environment steps in the
training set} ("val" only where there are val tasks). The rows that make the learning curve (the epoch before the
first on-policy round, every `curve_every`-th round and the last) add "onpolicy_return" (an epoch that collected:
the mean return of its on-policy rows), "val_returns" (the first-episode return of "tta" on each of the first
`learning_curve_tasks` val tasks, after the epoch's training) and "val_return" (their mean). `on_epoch(row)`
receives each row as it is made (TensorBoard).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch

from core import threads
from core.checkpoint import atomic_save, load_marked_checkpoint
from core.progress import progress_bar
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer, SegmentBatch, WindowSource
from env_runner.tasks import Task, TaskFamily
from meta_rl.distributed import is_main_process
from pipeline.acting import collect_onpolicy, val_returns
from pipeline.config import PipelineConfig, check_resumable
from pipeline.data import TaskContext, TaskSplits, concat_rollouts, sample_meta_batch, split_rows, to_device
from pipeline.models import WorldModels

TENSOR_FIELDS = tuple(field.name for field in fields(Rollouts) if field.name != "tasks")
SKIPPED_IN_A_ROW = 10  # a model whose gradient is not finite this many updates running has diverged


def train(
    config: PipelineConfig,
    family: TaskFamily,
    splits: TaskSplits,
    models: WorldModels,
    normalizer: Normalizer,
    context: TaskContext,
    dataset: Rollouts,
    checkpoint_path: Path,
    resume: bool,
    progress: bool,
    val_windows: SegmentBatch | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[Rollouts, dict[str, float] | None, list[dict]]:
    """Meta-train (and train ERM and the oracle) epoch by epoch, checkpointing after each.

    The last `config.rounds` epochs first collect on-policy rows with the planner and test-time adaptation on
    training tasks (GrBAL style), and train on everything collected so far. Returns the final training set, the
    last losses and the training curve (`val_windows`: the val tasks' windows its "val" losses are measured on).
    """
    generator = torch.Generator().manual_seed(config.seed)
    first_epoch, last_losses, curve = 0, None, []
    if resume:
        first_epoch, dataset, last_losses, curve = load_training_checkpoint(
            checkpoint_path, config, models, normalizer, splits.train, generator
        )
        if progress:
            print(f"resumed from {checkpoint_path} after epoch {first_epoch}")
    train_context = context(splits.train).to(config.device) if models.oracle_model is not None else None
    val_context = context(splits.val).to(config.device) if train_context is not None and splits.val else None
    position = {task: index for index, task in enumerate(splits.train)}
    onpolicy_from = config.num_epochs - config.rounds
    source = WindowSource.of(dataset, normalizer)  # normalised once per dataset, not once per meta-batch
    streak: dict[str, int] = {}  # each model's updates skipped in a row
    for epoch in range(first_epoch, config.num_epochs):
        onpolicy_return = None
        if epoch >= onpolicy_from:
            onpolicy = collect_onpolicy(family, splits.train, models, normalizer, context, config, epoch, generator)
            onpolicy_return = float(onpolicy.reward.sum(dim=1).mean())
            dataset = concat_rollouts([dataset, split_rows(onpolicy, config.onpolicy_steps)], splits.train)
            source = WindowSource.of(dataset, normalizer)
        bar = progress_bar(range(config.iterations_per_epoch), progress, f"epoch {epoch + 1}/{config.num_epochs}")
        sums: dict[str, float] = {}
        for iteration in bar:
            threads.tick()
            batch, tasks = sample_meta_batch(source, dataset.tasks, config, generator)
            batch_context = None if train_context is None else train_context[[position[task] for task in tasks]]
            skipped = models.skipped()
            last_losses = models.train_step(to_device(batch, config.device), batch_context)
            for name, count in models.skipped().items():
                streak[name] = streak.get(name, 0) + 1 if count > skipped[name] else 0
            diverged = [
                name
                for name, value in last_losses.items()
                if streak[name] >= SKIPPED_IN_A_ROW or (not math.isfinite(value) and not streak[name])
            ]  # a step whose gradient is not finite is skipped (and counted), but not a run of them
            if diverged:
                raise TrainingDiverged(diverged, epoch, iteration, checkpoint_path)
            sums = {name: sums.get(name, 0.0) + value for name, value in last_losses.items()}
            bar.set_postfix({name: f"{value:.4f}" for name, value in last_losses.items()})
        row = {"epoch": epoch + 1, "train": {name: total / config.iterations_per_epoch for name, total in sums.items()}}
        if val_windows is not None:
            row["val"] = models.losses(val_windows, val_context)
        row["env_steps"] = dataset.num_envs * dataset.steps
        if onpolicy_return is not None:
            row["onpolicy_return"] = onpolicy_return
        if config.measures_curve_after(epoch):
            val_tasks = splits.val[: config.learning_curve_tasks]
            returns = val_returns(family, val_tasks, models, normalizer, context, config, epoch)
            row["val_return"], row["val_returns"] = sum(returns) / len(returns), returns
        curve.append(row)
        if progress:
            for part in ("train", "val"):
                if part in row:
                    print(f"  {part} loss: " + ", ".join(f"{k} {v:.4f}" for k, v in row[part].items()), flush=True)
            returns = [f"{part} {row[f'{part}_return']:.1f}" for part in ("onpolicy", "val") if f"{part}_return" in row]
            if returns:
                print(f"  after {row['env_steps']} env steps, return: " + ", ".join(returns), flush=True)
        broken = models.non_finite()
        if broken:
            raise TrainingDiverged(broken, epoch, config.iterations_per_epoch - 1, checkpoint_path)
        if is_main_process():
            save_training_checkpoint(
                checkpoint_path, config, epoch + 1, models, normalizer, dataset, generator, last_losses, curve
            )
            if on_epoch is not None:
                on_epoch(row)
    return dataset, last_losses, curve


class TrainingDiverged(RuntimeError):
    """Training produced a loss or weights that are not finite and that no safeguard skipped, or gradients that were
    not finite SKIPPED_IN_A_ROW updates running; the checkpoint keeps the last epoch whose weights were finite."""

    def __init__(self, models: list[str], epoch: int, iteration: int, checkpoint_path: Path) -> None:
        self.details = (models, epoch, iteration, checkpoint_path)
        kept = f"{checkpoint_path} keeps epoch {epoch}" if epoch else "no epoch was checkpointed"
        super().__init__(
            f"training diverged in epoch {epoch + 1}, meta-batch {iteration + 1}: the {' and '.join(models)} loss, "
            f"weights or last {SKIPPED_IN_A_ROW} gradients are not finite; {kept}. Lower --outer_lr or --inner_lr"
        )

    def __reduce__(self) -> tuple:
        """Rebuilt from its arguments: a worker process's exception reaches the parent whole (`pipeline.executor`)."""
        return type(self), self.details


def save_training_checkpoint(
    path: Path,
    config: PipelineConfig,
    epoch: int,
    models: WorldModels,
    normalizer: Normalizer,
    dataset: Rollouts,
    generator: torch.Generator,
    last_losses: dict[str, float] | None,
    curve: list[dict],
) -> None:
    """Write atomically: key "model" is the meta-learned world model's state dict (with "model_config" and
    "world_model", its kind)."""
    atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": models.maml_model.state_dict(),
            "model_config": models.maml_model.config,
            "world_model": config.world_model,
            "models": models.state_dict(),
            "normalizer": normalizer.state_dict(),
            "dataset": {name: getattr(dataset, name) for name in TENSOR_FIELDS},
            "generator": generator.get_state(),
            "config": config.to_dict(),
            "epoch": epoch,
            "last_losses": last_losses,
            "curve": curve,
        },
        path,
    )


CHECKPOINT_FORMAT = "ssm-metarl pipeline checkpoint 2"


def read_training_checkpoint(path: Path) -> dict:
    """The checkpoint's contents; ValueError naming the file when it is not a readable checkpoint of this project."""
    return load_marked_checkpoint(path, CHECKPOINT_FORMAT, "ssm-metarl pipeline checkpoint")


def load_training_checkpoint(
    path: Path,
    config: PipelineConfig,
    models: WorldModels,
    normalizer: Normalizer,
    tasks: list[Task],
    generator: torch.Generator,
) -> tuple[int, Rollouts, dict[str, float] | None, list[dict]]:
    """Restore models, normaliser and generator in place; return (completed epochs, training dataset, the last
    meta-batch's losses: None in a checkpoint written before they were kept, the training curve so far: empty in
    a checkpoint written before it was kept)."""
    state = read_training_checkpoint(path)
    check_resumable(PipelineConfig.from_dict(state["config"]), config, path)
    models.load_state_dict(state["models"])
    normalizer.load_state_dict(state["normalizer"])
    generator.set_state(state["generator"])
    dataset = Rollouts(**state["dataset"], tasks=tuple(tasks))
    return int(state["epoch"]), dataset, state.get("last_losses"), state.get("curve", [])
