"""Task splits, random-policy data, and the training set of fixed-length rows that meta-training samples from."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer, SegmentBatch, sample_task_batches
from env_runner.tasks import Task, TaskFamily
from pipeline.config import PipelineConfig


@dataclass(frozen=True)
class TaskSplits:
    """Disjoint task sets: meta-training, held-out test (same ranges), out-of-distribution."""

    train: list[Task]
    test: list[Task]
    ood: list[Task]


def sample_splits(family: TaskFamily, config: PipelineConfig) -> TaskSplits:
    splits = TaskSplits(
        train=family.sample(config.num_train_tasks, seed=config.seed, split="train"),
        test=family.sample(config.num_test_tasks, seed=config.seed, split="test"),
        ood=family.sample(config.num_ood_tasks, seed=config.seed, split="ood") if family.has_task_distribution else [],
    )
    overlap = {_key(task) for task in splits.train} & {_key(task) for task in splits.test + splits.ood}
    if overlap:
        raise RuntimeError(f"train and held-out splits share tasks: {sorted(overlap)}")
    return splits


def _key(task: Task) -> tuple:
    return tuple(sorted(task.params.items())) if task.params else (task.split, task.index)


def split_rows(rollouts: Rollouts, length: int) -> Rollouts:
    """Cut every row (N, T, ·) into rows of `length` steps: (N * T // length, length, ·).

    Each new row starts an episode for the model (its state is not carried across the cut).
    """
    steps = rollouts.steps
    if steps % length:
        raise ValueError(f"rows of {steps} steps do not split into rows of {length}")
    pieces = steps // length
    values = {}
    for field in fields(Rollouts):
        value = getattr(rollouts, field.name)
        if field.name == "tasks":
            continue
        if field.name == "task_index":
            values[field.name] = value.repeat_interleave(pieces)
        else:
            values[field.name] = value.reshape(rollouts.num_envs * pieces, length, *value.shape[2:])
    values["episode_start"] = values["episode_start"].clone()
    values["episode_start"][:, 0] = True
    return Rollouts(**values, tasks=rollouts.tasks)


def concat_rollouts(parts: list[Rollouts], tasks: list[Task]) -> Rollouts:
    """Stack rollouts of equal length along rows; `task_index` is re-expressed as an index into `tasks`."""
    position = {task: index for index, task in enumerate(tasks)}
    task_index = torch.cat([
        torch.tensor([position[part.tasks[i]] for i in part.task_index.tolist()], dtype=torch.long) for part in parts
    ])
    values = {
        field.name: torch.cat([getattr(part, field.name) for part in parts])
        for field in fields(Rollouts)
        if field.name not in ("tasks", "task_index")
    }
    return Rollouts(**values, task_index=task_index, tasks=tuple(tasks))


def sample_meta_batch(
    dataset: Rollouts, normalizer: Normalizer, config: PipelineConfig, generator: torch.Generator
) -> SegmentBatch:
    """`meta_batch_size` distinct training tasks, `windows_per_task` windows each: (n_tasks, W, M or K, D)."""
    num_tasks = len(dataset.tasks)
    chosen = torch.randperm(num_tasks, generator=generator)[: min(config.meta_batch_size, num_tasks)]
    return sample_task_batches(
        dataset, normalizer, chosen, config.windows_per_task, config.support_len, config.query_len, generator
    )


def to_device(batch: SegmentBatch, device: torch.device | str) -> SegmentBatch:
    return replace(batch, **{field.name: getattr(batch, field.name).to(device) for field in fields(SegmentBatch)})
