"""Meta-training: the meta-learned world model, its ERM and oracle baselines, the epoch loop with on-policy
rounds, and the checkpoint that makes a run resumable.

All three models start from the same initial weights (the oracle's input layer is wider) and train on the
same windows for the same number of steps: MetaMAML (one Adam step on the post-adaptation query loss),
ERM (one Adam step on the MSE of every window's support and query steps as one sequence, no inner loop),
and the oracle (ERM with the task's standardised coefficients appended to every input). MetaMAML adapts on
one support window per (support, query) pair, the support size that prediction and online adaptation use at
test time, with `windows_per_task` pairs per task in a meta-batch.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path

import torch
import torch.nn.functional as F

from core.checkpoint import atomic_save, load_marked_checkpoint
from core.ssm import SSM
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer, SegmentBatch, WindowSource
from env_runner.tasks import Task, TaskFamily
from meta_rl.distributed import is_main_process, sharded_backward
from meta_rl.meta_maml import MetaMAML
from pipeline.config import PipelineConfig
from pipeline.data import TaskContext, TaskSplits, concat_rollouts, sample_meta_batch, split_rows, to_device
from pipeline.evaluate_control import collect_onpolicy
from pipeline.report import progress_bar

TENSOR_FIELDS = tuple(field.name for field in fields(Rollouts) if field.name != "tasks")


class WorldModels:
    """MetaMAML on an SSM, an ERM SSM of the same architecture and initial weights, and the oracle SSM."""

    def __init__(self, config: PipelineConfig, input_dim: int, output_dim: int, context_dim: int) -> None:
        torch.manual_seed(config.seed)
        self.maml_model = SSM(config.state_dim, input_dim, output_dim, config.hidden_dim, device=config.device)
        self.erm_model = copy.deepcopy(self.maml_model)
        self.oracle_model = None
        if context_dim:
            self.oracle_model = SSM(
                config.state_dim, input_dim + context_dim, output_dim, config.hidden_dim, device=config.device
            )
            self.oracle_model.load_state_dict(
                self.maml_model.state_dict()
                | {
                    "in_proj.weight": torch.cat(
                        [
                            self.maml_model.in_proj.weight.detach(),
                            self.oracle_model.in_proj.weight.detach()[:, input_dim:],
                        ],
                        dim=1,
                    )
                }
            )
        self.learner = MetaMAML(
            self.maml_model,
            inner_lr=config.inner_lr,
            outer_lr=config.outer_lr,
            first_order=config.first_order,
            learn_inner_lr=config.learn_inner_lr,
            num_inner_steps=config.num_inner_steps,
            grad_clip_norm=config.grad_clip_norm,
            inner_grad_clip=config.inner_grad_clip,
        )
        self.optimizers = {
            name: torch.optim.Adam(model.parameters(), lr=config.outer_lr) for name, model in self._supervised().items()
        }
        self.grad_clip_norm = config.grad_clip_norm

    def _supervised(self) -> dict[str, SSM]:
        models = {"erm": self.erm_model}
        if self.oracle_model is not None:
            models["oracle"] = self.oracle_model
        return models

    def train_step(self, batch: SegmentBatch, context: torch.Tensor | None = None) -> dict[str, float]:
        """One meta-update and one step of each supervised model on the same windows; returns their losses.

        context (n_tasks, K): the oracle's per-task input (needed when there is an oracle).
        """
        losses = {"maml": self.learner.meta_update(batch.window_tuples())}  # support: one window, as at test time
        x = torch.cat([batch.support_x, batch.query_x], dim=2)  # (n_tasks, W, M + K, D_in)
        y = torch.cat([batch.support_y, batch.query_y], dim=2)
        reset = torch.cat([batch.support_reset, batch.query_reset], dim=2)
        for name, model in self._supervised().items():
            inputs = x if name == "erm" else torch.cat([x, context[:, None, None].expand(*x.shape[:3], -1)], dim=-1)
            losses[name] = self._supervised_step(model, self.optimizers[name], inputs, y, reset)
        return losses

    def _supervised_step(self, model: SSM, optimizer: torch.optim.Optimizer, x, y, reset) -> float:
        """One Adam step on the MSE over all windows; under torch.distributed each rank takes a shard of tasks."""
        optimizer.zero_grad(set_to_none=True)

        def shard_loss(local: list[int]) -> torch.Tensor:
            local_x, local_y, local_reset = (t[local].flatten(0, 1) for t in (x, y, reset))
            prediction, _ = model(local_x, model.init_hidden(local_x.shape[0]), local_reset)
            return F.mse_loss(prediction, local_y, reduction="sum") / y.numel()

        loss = sharded_backward(shard_loss, list(range(x.shape[0])), list(model.parameters()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip_norm)
        optimizer.step()
        return loss

    def state_dict(self) -> dict:
        state = {"learner": self.learner.state_dict()}
        for name, model in self._supervised().items():
            state[f"{name}_model"] = model.state_dict()
            state[f"{name}_optimizer"] = self.optimizers[name].state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_state_dict(state["learner"])
        for name, model in self._supervised().items():
            model.load_state_dict(state[f"{name}_model"])
            self.optimizers[name].load_state_dict(state[f"{name}_optimizer"])


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
) -> tuple[Rollouts, dict[str, float] | None]:
    """Meta-train (and train ERM and the oracle) epoch by epoch, checkpointing after each.

    The last `onpolicy_rounds` epochs (with control) first collect on-policy rows with the planner and
    test-time adaptation on training tasks (GrBAL style). Returns the final training set and the last losses.
    """
    generator = torch.Generator().manual_seed(config.seed)
    first_epoch = 0
    if resume:
        first_epoch, dataset = load_training_checkpoint(
            checkpoint_path, config, models, normalizer, splits.train, generator
        )
        if progress:
            print(f"resumed from {checkpoint_path} after epoch {first_epoch}")
    train_context = context(splits.train).to(config.device) if models.oracle_model is not None else None
    position = {task: index for index, task in enumerate(splits.train)}
    onpolicy_from = config.num_epochs - config.onpolicy_rounds if config.control else config.num_epochs
    last_losses = None
    source = WindowSource.of(dataset, normalizer)  # normalised once per dataset, not once per meta-batch
    for epoch in range(first_epoch, config.num_epochs):
        if epoch >= onpolicy_from:
            onpolicy = collect_onpolicy(family, splits.train, models, normalizer, context, config, epoch, generator)
            dataset = concat_rollouts([dataset, split_rows(onpolicy, config.onpolicy_steps)], splits.train)
            source = WindowSource.of(dataset, normalizer)
        bar = progress_bar(range(config.iterations_per_epoch), progress, f"epoch {epoch + 1}/{config.num_epochs}")
        for _ in bar:
            batch, tasks = sample_meta_batch(source, dataset.tasks, config, generator)
            batch_context = None if train_context is None else train_context[[position[task] for task in tasks]]
            last_losses = models.train_step(to_device(batch, config.device), batch_context)
            bar.set_postfix({name: f"{value:.4f}" for name, value in last_losses.items()})
        if progress and last_losses:
            print("  losses: " + ", ".join(f"{name} {value:.4f}" for name, value in last_losses.items()), flush=True)
        if is_main_process():
            save_training_checkpoint(checkpoint_path, config, epoch + 1, models, normalizer, dataset, generator)
    return dataset, last_losses


def save_training_checkpoint(
    path: Path,
    config: PipelineConfig,
    epoch: int,
    models: WorldModels,
    normalizer: Normalizer,
    dataset: Rollouts,
    generator: torch.Generator,
) -> None:
    """Write atomically: key "model" is the meta-learned SSM's state dict (with "model_config")."""
    atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model": models.maml_model.state_dict(),
            "model_config": models.maml_model.config,
            "models": models.state_dict(),
            "normalizer": normalizer.state_dict(),
            "dataset": {name: getattr(dataset, name) for name in TENSOR_FIELDS},
            "generator": generator.get_state(),
            "config": config.to_dict(),
            "epoch": epoch,
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
) -> tuple[int, Rollouts]:
    """Restore models, normaliser and generator in place; return (completed epochs, training dataset)."""
    state = read_training_checkpoint(path)
    saved = PipelineConfig.from_dict(state["config"])
    if saved != config:
        changed = {
            key: (value, getattr(config, key))
            for key, value in saved.to_dict().items()
            if config.to_dict()[key] != value
        }
        raise ValueError(f"cannot resume {path}: the configuration differs (saved, requested): {changed}")
    models.load_state_dict(state["models"])
    normalizer.load_state_dict(state["normalizer"])
    generator.set_state(state["generator"])
    return int(state["epoch"]), Rollouts(**state["dataset"], tasks=tuple(tasks))
