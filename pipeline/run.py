"""The pipeline, stage by stage in the order they run: data -> training -> prediction -> control -> report.

    train_world(config, family, ...)  the data and training stages, on their own
    run(config, out_dir)              one seed: config.json, metrics.json, checkpoint.pt, plots
    run_seeds(config, seeds, out_dir) one complete run per seed in <out_dir>/seed_<S>/, then the summary
                                      (a single `--seed` run writes into <out_dir> itself)

Selection (ERM's fine-tuning) reads val tasks only; test and OOD tasks are read once, at the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist

from core.seeding import seed_everything
from env_runner.environment import Environment
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer
from env_runner.tasks import TaskFamily
from meta_rl.distributed import is_main_process, rank_and_world_size
from pipeline.config import PipelineConfig, with_overrides
from pipeline.data import TaskContext, TaskSplits, collect_data, sample_splits, split_rows
from pipeline.evaluate_control import evaluate_control
from pipeline.prediction import evaluate_prediction
from pipeline.report import summary_table, write_plots
from pipeline.rl2_run import run_rl2
from pipeline.summary import write_summary
from pipeline.training import WorldModels, train


def setup_distributed(config: PipelineConfig) -> PipelineConfig:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return config
    if config.device.startswith("cuda"):
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return with_overrides(config, device=f"cuda:{local_rank}")
    dist.init_process_group("gloo")
    return config


class TrainedWorld(NamedTuple):
    """What the data and training stages hand to the evaluation stages."""

    normalizer: Normalizer
    context: TaskContext
    models: WorldModels
    dataset: Rollouts
    last_losses: dict[str, float] | None


def train_world(
    config: PipelineConfig,
    family: TaskFamily,
    splits: TaskSplits,
    output_dim: int,
    checkpoint_path: Path,
    resume: bool = False,
    progress: bool = True,
    stages: dict[str, float] | None = None,
) -> TrainedWorld:
    """The data and training stages: random-policy data on the train tasks, the normaliser (fit on that data
    only), and the world models trained on it, checkpointed to `checkpoint_path` after each epoch.

    `config.input_dim` must be the family's model input width; `output_dim` is the observation width.
    `stages` (when given) receives the seconds spent collecting ("collect_s") and training ("train_s").
    """
    stages = {} if stages is None else stages
    start_time = time.perf_counter()
    random_data = collect_data(family, splits.train, config.steps_per_task, config.seed, progress)
    stages["collect_s"] = time.perf_counter() - start_time
    normalizer = Normalizer.fit(random_data, dropped_obs=family.translation_invariant_obs)  # training data only
    context = TaskContext(family, splits.train)
    models = WorldModels(config, config.input_dim, output_dim, context.width)
    dataset, last_losses = train(
        config,
        family,
        splits,
        models,
        normalizer,
        context,
        split_rows(random_data, config.onpolicy_steps),
        checkpoint_path,
        resume,
        progress,
    )
    stages["train_s"] = time.perf_counter() - start_time - stages["collect_s"]
    return TrainedWorld(normalizer, context, models, dataset, last_losses)


def run(config: PipelineConfig, out_dir: Path, resume: bool = False, progress: bool = True) -> dict | None:
    """The whole pipeline for one seed; returns the metrics written to <out_dir>/metrics.json (None on ranks
    other than 0). `config.algo == "rl2"` runs pipeline/rl2_run.py instead."""
    if config.algo == "rl2":
        return run_rl2(config, out_dir, resume, progress)
    start_time = time.perf_counter()
    config = setup_distributed(config)
    main_process, world_size = is_main_process(), rank_and_world_size()[1]
    try:
        progress = progress and main_process
        seed_everything(config.seed)
        with Environment(config.env_name, seed=config.seed) as env:  # the model's widths come from the environment
            family, input_dim, output_dim = env.family, env.family.model_input_dim, env.obs_dim
        if config.input_dim not in (None, input_dim):
            raise ValueError(
                f"config.input_dim {config.input_dim} contradicts {config.env_name}: obs_dim + action_dim = {input_dim}"
            )
        if config.control and not family.has_reward_fn:
            raise ValueError(
                f"{config.env_name} has no closed-form reward for the planner: set control=False (--no-control)"
            )
        config = replace(config, input_dim=input_dim)
        checkpoint_path = out_dir / "checkpoint.pt"
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        splits = sample_splits(family, config)
        stages = {"setup_s": time.perf_counter() - start_time}
        normalizer, context, models, dataset, last_losses = train_world(
            config, family, splits, output_dim, checkpoint_path, resume, progress, stages
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if not main_process:
        return None
    # evaluation runs in rank 0 alone, as a single process: val selection first, then test and OOD once
    metrics = {
        "env_name": config.env_name,
        "seed": config.seed,
        "config": config.to_dict(),
        "task_distribution": family.has_task_distribution,
        "tasks": {
            split: [{"params": task.params, "coefficients": family.coefficients(task)} for task in tasks]
            for split, tasks in splits.as_dict().items()
        },
    }
    metrics.update(evaluate_prediction(family, splits, models, normalizer, context, config, progress))
    stages["prediction_s"] = time.perf_counter() - start_time - sum(stages.values())
    if config.control:
        for key, tasks in (("control", splits.test), ("control_ood", splits.ood)):
            if tasks:
                metrics[key] = evaluate_control(
                    family, tasks, tasks[0].split, models, normalizer, context, config, progress
                )
                stages[f"{key}_s"] = time.perf_counter() - start_time - sum(stages.values())
    metrics["training"] = {
        "final_losses": last_losses,
        "world_size": world_size,
        "skipped_meta_updates": models.learner.skipped_updates,
        "transitions": dataset.num_envs * dataset.steps,
    }
    metrics["timing"] = {"total_s": time.perf_counter() - start_time, "stages": stages}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_plots(metrics, out_dir)
    if progress:
        print(summary_table(metrics))
    return metrics


def run_seeds(
    config: PipelineConfig,
    seeds: list[int],
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    per_seed_dirs: bool = True,
) -> dict:
    """One complete run per seed in <out_dir>/seed_<S>/ (each resumable), then summary.json and summary.md.

    `per_seed_dirs=False` (one seed, `--seed S`): the run writes into `out_dir` itself, summary beside it.
    """
    if not per_seed_dirs and len(seeds) != 1:
        raise ValueError(f"a run without per-seed folders has one seed, got {seeds}")
    per_seed = []
    for seed in seeds:
        seed_dir = out_dir / f"seed_{seed}" if per_seed_dirs else out_dir
        if resume and (seed_dir / "metrics.json").is_file():  # a finished seed is read back, not rerun
            finished = json.loads((seed_dir / "metrics.json").read_text())
            saved = PipelineConfig.from_dict(finished["config"])
            if saved != replace(config, seed=seed, input_dim=saved.input_dim):
                raise ValueError(f"cannot resume {seed_dir}: the configuration differs from the finished run's")
            per_seed.append(finished)
            continue
        resume_seed = resume and (seed_dir / "checkpoint.pt").is_file()
        per_seed.append(run(replace(config, seed=seed), seed_dir, resume=resume_seed, progress=progress))
    if any(metrics is None for metrics in per_seed):  # a torchrun rank other than 0: rank 0 writes the summary
        return {}
    return write_summary(per_seed, out_dir)
