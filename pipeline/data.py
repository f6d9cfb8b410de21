"""Task splits, random-policy data, the oracle's task context, and the training set of fixed-length rows that
meta-training samples from."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from core.progress import progress_bar
from core.seeding import derive_seed
from env_runner.protocols import protocol_record
from env_runner.rollouts import Rollouts, collect
from env_runner.segments import Normalizer, SegmentBatch, WindowSource, sample_source_batches, sample_task_batches
from env_runner.tasks import Task, TaskFamily, check_disjoint
from meta_rl.distributed import all_gather_objects, shard
from pipeline.config import PipelineConfig
from pipeline.provenance import provenance


@dataclass(frozen=True)
class TaskSplits:
    """Disjoint task sets: meta-training, validation (every selection), held-out test, out-of-distribution."""

    train: list[Task]
    val: list[Task]
    test: list[Task]
    ood: list[Task]

    def as_dict(self) -> dict[str, list[Task]]:
        return {"train": self.train, "val": self.val, "test": self.test, "ood": self.ood}


def sample_splits(family: TaskFamily, config: PipelineConfig) -> TaskSplits:
    """The run's tasks; disjoint splits (checked) unless the family's few tasks are shared by every split."""
    ood = family.sample(config.num_ood_tasks, seed=config.seed, split="ood") if family.has_ood_split else []
    splits = TaskSplits(
        train=family.sample(config.num_train_tasks, seed=config.seed, split="train"),
        val=family.sample(config.num_val_tasks, seed=config.seed, split="val"),
        test=family.sample(config.num_test_tasks, seed=config.seed, split="test"),
        ood=ood,
    )
    if family.held_out_tasks:
        check_disjoint(splits.as_dict())
    return splits


def run_header(config: PipelineConfig, family: TaskFamily, splits: TaskSplits, argv: list[str]) -> dict:
    """What every run's metrics.json starts with: the environment, seed and config, where the numbers came from
    (`provenance`), what the family's splits are (whether tasks differ, whether test tasks are held out of training,
    whether there is an OOD split), the protocol the tasks come from, and each split's tasks."""
    return {
        "env_name": config.env_name,
        "seed": config.seed,
        "config": config.to_dict(),
        "provenance": provenance(argv, config.device),
        "task_distribution": family.has_task_distribution,
        "held_out_tasks": family.held_out_tasks,
        "ood_split": family.has_ood_split,
        "protocol": protocol_record(config.protocol, config.env_name),
        "tasks": {
            split: [{"params": task.params, "coefficients": family.coefficients(task)} for task in tasks]
            for split, tasks in splits.as_dict().items()
        },
    }


def evaluation_reset_seed(seed: int, split: str, position: int, episode: int) -> int:
    """The env reset seed of the `episode`-th evaluation episode on the `position`-th task of `split` ("val", "test",
    "ood"): what every method evaluated on those tasks (the planner conditions, RL²'s trials) starts from."""
    return derive_seed(seed, f"control-{split}", position, episode)


def collect_data(family: TaskFamily, tasks: list[Task], steps: int, seed: int, progress: bool) -> Rollouts:
    """Random-policy transitions on each task: tensors (num_tasks, steps, ·).

    Each task runs in its own env seeded from (seed, its split, its index), so the data depend neither on
    how the tasks are split across torch.distributed ranks (each collects a share, then all gather) nor on
    which other tasks are collected with it.
    """
    positions = shard(range(len(tasks)))
    local = [
        (
            position,
            collect(
                family,
                [tasks[position]],
                steps,
                seed=derive_seed(seed, f"collect-{tasks[position].split}", tasks[position].index),
            ),
        )
        for position in progress_bar(
            positions, progress, f"collect ({len(tasks)} {tasks[0].split if tasks else ''} tasks)"
        )
    ]
    gathered = sorted((item for part in all_gather_objects(local) for item in part), key=lambda item: item[0])
    return concat_rollouts([rollouts for _, rollouts in gathered], tasks)


class TaskContext:
    """The oracle's extra input, what the task is: its continuous coefficients (log for log coefficients),
    standardised over the training tasks, then each categorical coefficient one-hot over every value it takes
    (a crippled motor: OOD motors included) -> (K,) float32. Fit on training tasks only."""

    def __init__(self, family: TaskFamily, train_tasks: list[Task]) -> None:
        self.family = family
        self.names = tuple(family.coefficient_ranges)
        self.categories = dict(family.categorical_coefficients)
        raw = self._continuous(train_tasks)
        self.mean = raw.mean(0)
        spread = len(train_tasks) > 1 and len(self.names) > 0
        self.std = raw.std(0).clamp_min(1e-6) if spread else torch.ones(len(self.names), dtype=torch.float64)

    @property
    def width(self) -> int:
        return len(self.names) + sum(len(values) for values in self.categories.values())

    def _continuous(self, tasks: list[Task]) -> torch.Tensor:
        """(len(tasks), C) float64: each continuous coefficient (its log for a log coefficient)."""
        rows = []
        for task in tasks:
            values = self.family.coefficients(task)
            rows.append([math.log(values[n]) if n in self.family.log_coefficients else values[n] for n in self.names])
        return torch.tensor(rows, dtype=torch.float64).reshape(len(tasks), len(self.names))

    def _one_hot(self, tasks: list[Task]) -> torch.Tensor:
        """(len(tasks), sum of the categories' sizes): a 1 at each categorical coefficient's value."""
        columns = []
        for name, values in self.categories.items():
            index = torch.tensor(
                [values.index(int(self.family.coefficients(task)[name])) for task in tasks], dtype=torch.long
            )
            columns.append(torch.nn.functional.one_hot(index, len(values)).float())
        return torch.cat(columns, dim=1) if columns else torch.zeros(len(tasks), 0)

    def __call__(self, tasks: list[Task]) -> torch.Tensor:
        """(len(tasks), K) standardised continuous coefficients, then the one-hot categories."""
        continuous = ((self._continuous(tasks) - self.mean) / self.std).float()
        return torch.cat([continuous, self._one_hot(tasks)], dim=1)


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
    task_index = torch.cat(
        [torch.tensor([position[part.tasks[i]] for i in part.task_index.tolist()], dtype=torch.long) for part in parts]
    )
    values = {
        field.name: torch.cat([getattr(part, field.name) for part in parts])
        for field in fields(Rollouts)
        if field.name not in ("tasks", "task_index")
    }
    return Rollouts(**values, task_index=task_index, tasks=tuple(tasks))


def sample_meta_batch(
    source: WindowSource, tasks: tuple[Task, ...], config: PipelineConfig, generator: torch.Generator
) -> tuple[SegmentBatch, list[Task]]:
    """`meta_batch_size` distinct training tasks (of `tasks`, which `source.task_index` indexes),
    `windows_per_task` windows each: (n_tasks, W, M or K, D), and those tasks in batch order."""
    chosen = torch.randperm(len(tasks), generator=generator)[: min(config.meta_batch_size, len(tasks))]
    batch = sample_source_batches(
        source, chosen, config.windows_per_task, config.support_len, config.query_len, generator
    )
    return batch, [tasks[index] for index in chosen.tolist()]


def to_device(batch: SegmentBatch, device: torch.device | str) -> SegmentBatch:
    return replace(batch, **{field.name: getattr(batch, field.name).to(device) for field in fields(SegmentBatch)})


def held_out_windows(
    family: TaskFamily, tasks: list[Task], split: str, normalizer: Normalizer, config: PipelineConfig, progress: bool
) -> SegmentBatch:
    """`eval_windows_per_task` (support, query) windows of fresh random-policy data per task: (n, W, ·)."""
    data = collect_data(family, tasks, config.steps_per_task, config.seed, progress)
    batch = sample_task_batches(
        data,
        normalizer,
        list(range(len(tasks))),
        config.eval_windows_per_task,
        config.support_len,
        config.query_len,
        derive_seed(config.seed, f"windows-{split}"),
    )
    return to_device(batch, config.device)
