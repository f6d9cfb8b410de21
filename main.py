"""Meta-RL with a state space model, end to end.

1. Read the model's widths from the environment; sample disjoint train / test / OOD tasks of its task family.
2. Collect transitions on the train tasks with a random policy (`collect_data`).
3. Meta-train an SSM world model with MetaMAML (inputs: normalised (obs, action); targets: normalised
   next_obs - obs; support and query: consecutive windows of one task), and an ERM baseline on the
   same windows for the same number of steps. The last epochs first collect on-policy data with the
   planner and test-time adaptation on train tasks (GrBAL style) and add it to the training set.
4. Prediction: MSE on held-out test and OOD tasks after 0, 1, 5 adaptation steps (and in context).
5. Control: an MPC planner on the world model, with and without online test-time adaptation,
   against a random policy and a planner on the true dynamics, on held-out test tasks.
6. Write config.json, metrics.json, checkpoint.pt and plots to --out_dir.

    python main.py --env_name Pendulum-v1
    python main.py --quick                       # seconds-long smoke run
    python main.py --out_dir runs/x --resume     # continue a killed run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm, trange

from env_runner.environment import Environment, make_task_family
from env_runner.rollouts import Rollouts, collect
from env_runner.segments import Normalizer, sample_task_batches
from env_runner.tasks import Task, TaskFamily
from meta_rl.distributed import all_gather_objects, is_main_process, rank_and_world_size, shard
from pipeline.checkpointing import load_pipeline_checkpoint, save_checkpoint
from pipeline.config import PipelineConfig, quick_overrides, with_overrides
from pipeline.control import collect_onpolicy, evaluate_control
from pipeline.data import TaskSplits, concat_rollouts, sample_meta_batch, sample_splits, split_rows, to_device
from pipeline.plots import write_plots
from pipeline.prediction import select_finetune_lr, window_errors
from pipeline.report import prediction_metrics, summary_table
from pipeline.training import WorldModels


def build_parser() -> argparse.ArgumentParser:
    defaults = PipelineConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--env_name", default=defaults.env_name, help="gymnasium id with a task family (default %(default)s)")
    add("--num_epochs", type=int, help=f"meta-training epochs (default {defaults.num_epochs})")
    add("--iterations_per_epoch", type=int, help=f"meta-updates per epoch (default {defaults.iterations_per_epoch})")
    add("--input_dim", type=int, help="model input width; must equal obs_dim + action_dim of the environment "
                                      "(default: that width)")
    add("--state_dim", type=int, help=f"SSM state size (default {defaults.state_dim})")
    add("--hidden_dim", type=int, help=f"SSM hidden width (default {defaults.hidden_dim})")
    add("--inner_lr", type=float, help=f"inner-loop SGD learning rate (default {defaults.inner_lr})")
    add("--outer_lr", type=float, help=f"outer-loop Adam learning rate (default {defaults.outer_lr})")
    add("--num_inner_steps", type=int, help=f"inner steps per meta-update (default {defaults.num_inner_steps})")
    add("--first_order", action="store_true", default=None, help="first-order MAML (no second derivatives)")
    add("--meta_batch_size", type=int, help=f"tasks per meta-update (default {defaults.meta_batch_size})")
    add("--support_len", type=int, help=f"support window length M (default {defaults.support_len})")
    add("--query_len", type=int, help=f"query window length K (default {defaults.query_len})")
    add("--seed", type=int, default=defaults.seed, help="seeds torch, numpy and the environments (default 0)")
    add("--device", default="auto", help="cpu, cuda, cuda:N, or auto: CUDA when available (default auto)")
    add("--out_dir", type=Path, help="output folder (default runs/<env>-<timestamp>)")
    add("--resume", action="store_true", help="continue from <out_dir>/checkpoint.pt with the same flags")
    add("--quick", action="store_true", help="seconds-long smoke configuration (every stage on tiny sizes)")
    add("--no_control", action="store_true", help="skip on-policy collection and the control evaluation")
    add("--no_progress", action="store_true", help="hide progress bars")
    return parser


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but torch.cuda.is_available() is False")
    return name


def build_config(args: argparse.Namespace, parser: argparse.ArgumentParser, family: TaskFamily) -> PipelineConfig:
    config = PipelineConfig(env_name=args.env_name, seed=args.seed, device=resolve_device(args.device))
    if args.quick:
        config = with_overrides(config, **quick_overrides())
    env_width = family.obs_dim + family.action_dim
    if args.input_dim is not None and args.input_dim != env_width:
        parser.error(
            f"--input_dim {args.input_dim} contradicts {args.env_name}: obs_dim {family.obs_dim} + action_dim "
            f"{family.action_dim} = {env_width}"
        )
    flags = ("num_epochs", "iterations_per_epoch", "state_dim", "hidden_dim", "inner_lr", "outer_lr",
             "num_inner_steps", "first_order", "meta_batch_size", "support_len", "query_len")
    config = with_overrides(config, input_dim=env_width, **{flag: getattr(args, flag) for flag in flags})
    if args.no_control:
        config = with_overrides(config, control=False)
    for name in ("num_epochs", "iterations_per_epoch", "state_dim", "hidden_dim", "num_inner_steps",
                 "meta_batch_size", "support_len", "query_len"):
        if getattr(config, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(config, name)}")
    if config.seed < 0:
        parser.error(f"--seed must be >= 0, got {config.seed}")
    if config.control and not family.has_reward_fn:
        parser.error(f"{args.env_name} has no closed-form reward for the planner to score imagined trajectories: "
                     "pass --no_control")
    if config.inner_lr <= 0 or config.outer_lr <= 0:
        parser.error("--inner_lr and --outer_lr must be positive")
    if config.support_len + config.query_len > config.onpolicy_steps:
        parser.error(f"--support_len + --query_len must fit in a row of {config.onpolicy_steps} steps")
    return config


def collect_data(family: TaskFamily, tasks: list[Task], steps: int, seed: int, progress: bool) -> Rollouts:
    """Random-policy transitions on each task: tensors (num_tasks, steps, ·).

    Each task runs in its own env seeded from (seed, task position), so the data do not depend on how
    the tasks are split across torch.distributed ranks (each rank collects its share, then all gather).
    """
    positions = shard(range(len(tasks)))
    local = [(position, collect(family, [tasks[position]], steps, seed=seed * 100_003 + position))
             for position in tqdm(positions, desc="collect", disable=not progress)]
    gathered = sorted((item for part in all_gather_objects(local) for item in part), key=lambda item: item[0])
    return concat_rollouts([rollouts for _, rollouts in gathered], tasks)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def train(
    config: PipelineConfig, family: TaskFamily, splits: TaskSplits, models: WorldModels, normalizer: Normalizer,
    dataset: Rollouts, checkpoint_path: Path, resume: bool, progress: bool,
) -> tuple[Rollouts, tuple[float, float] | None]:
    """Meta-train (and train ERM) epoch by epoch, checkpointing after each.

    Returns the final training set and the last (MAML outer loss, ERM loss), None if no step ran.
    """
    generator = torch.Generator().manual_seed(config.seed)
    first_epoch = 0
    if resume:
        first_epoch, dataset = load_pipeline_checkpoint(
            checkpoint_path, config, models, normalizer, splits.train, generator
        )
        if progress:
            print(f"resumed from {checkpoint_path} after epoch {first_epoch}")
    onpolicy_from = config.num_epochs - config.onpolicy_rounds if config.control else config.num_epochs
    last_losses = None
    for epoch in range(first_epoch, config.num_epochs):
        if epoch >= onpolicy_from:
            onpolicy = collect_onpolicy(family, splits.train, models.maml_model, normalizer, config, epoch, generator,
                                        progress)
            dataset = concat_rollouts([dataset, split_rows(onpolicy, config.onpolicy_steps)], splits.train)
        bar = trange(config.iterations_per_epoch, desc=f"epoch {epoch + 1}/{config.num_epochs}",
                     disable=not progress)
        for _ in bar:
            batch = to_device(sample_meta_batch(dataset, normalizer, config, generator), config.device)
            last_losses = models.train_step(batch)
            bar.set_postfix(maml=f"{last_losses[0]:.4f}", erm=f"{last_losses[1]:.4f}")
        if is_main_process():
            save_checkpoint(checkpoint_path, config, epoch + 1, models, normalizer, dataset, generator)
    return dataset, last_losses


def evaluate_prediction(
    config: PipelineConfig, family: TaskFamily, splits: TaskSplits, models: WorldModels, normalizer: Normalizer,
    dataset: Rollouts, progress: bool,
) -> dict:
    """Held-out prediction MSE of MAML and ERM; ERM fine-tunes with its own rate, chosen on training tasks."""
    selection_tasks = list(range(min(len(splits.train), config.num_test_tasks)))  # training tasks, as many as test
    train_batch = sample_task_batches(dataset, normalizer, selection_tasks, config.eval_windows_per_task,
                                      config.support_len, config.query_len, config.seed + 3)
    candidates = (config.inner_lr, config.inner_lr / 5, config.inner_lr / 25)
    erm_lr = select_finetune_lr(models.erm_model, to_device(train_batch, config.device), candidates,
                                config.eval_steps, config.inner_grad_clip)
    errors = {}
    for name, tasks, seed_offset in (("in_distribution", splits.test, 1), ("ood", splits.ood, 2)):
        if not tasks:
            continue
        held_out = collect_data(family, tasks, config.steps_per_task, config.seed + 1000 * seed_offset, progress)
        batch = sample_task_batches(held_out, normalizer, list(range(len(tasks))), config.eval_windows_per_task,
                                    config.support_len, config.query_len, config.seed + seed_offset)
        batch = to_device(batch, config.device)
        errors[name] = {
            "maml": window_errors(models.maml_model, config.inner_lr, batch, config.eval_steps, config.inner_grad_clip),
            "erm": window_errors(models.erm_model, erm_lr, batch, config.eval_steps, config.inner_grad_clip),
        }
    metrics = prediction_metrics(errors, config.eval_windows_per_task)
    metrics["prediction_settings"] = {"maml_inner_lr": config.inner_lr, "erm_finetune_lr": erm_lr,
                                      "windows_per_task": config.eval_windows_per_task}
    return metrics


def run(config: PipelineConfig, out_dir: Path, resume: bool = False, progress: bool = True) -> dict | None:
    """The whole pipeline; returns the metrics written to <out_dir>/metrics.json (None on ranks other than 0)."""
    start_time = time.perf_counter()
    config = setup_distributed(config)
    main_process, world_size = is_main_process(), rank_and_world_size()[1]
    try:
        progress = progress and main_process
        seed_everything(config.seed)
        checkpoint_path = out_dir / "checkpoint.pt"
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        with Environment(config.env_name, seed=config.seed) as env:  # the model's widths come from the environment
            input_dim, output_dim = env.obs_dim + env.action_dim, env.obs_dim
        if config.input_dim not in (None, input_dim):
            raise ValueError(f"config.input_dim {config.input_dim} contradicts {config.env_name}: obs_dim + "
                             f"action_dim = {input_dim}")
        family = make_task_family(config.env_name)
        splits = sample_splits(family, config)
        random_data = collect_data(family, splits.train, config.steps_per_task, config.seed, progress)
        normalizer = Normalizer.fit(random_data)  # training data only
        models = WorldModels(config, input_dim, output_dim)
        dataset, last_losses = train(config, family, splits, models, normalizer,
                                     split_rows(random_data, config.onpolicy_steps), checkpoint_path, resume, progress)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if not main_process:
        return None
    # evaluation runs in rank 0 alone, as a single process
    metrics = {"env_name": config.env_name, "seed": config.seed, "config": config.to_dict(),
               "task_distribution": family.has_task_distribution}
    metrics.update(evaluate_prediction(config, family, splits, models, normalizer, dataset, progress))
    if config.control:
        metrics["control"] = evaluate_control(family, splits.test, models.maml_model, normalizer, config, progress)
    maml_loss, erm_loss = last_losses or (None, None)
    metrics["training"] = {"final_maml_outer_loss": maml_loss, "final_erm_loss": erm_loss,
                           "world_size": world_size, "transitions": dataset.num_envs * dataset.steps}
    metrics["timing"] = {"total_s": time.perf_counter() - start_time}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_plots(metrics, out_dir)
    print(summary_table(metrics))
    print(f"outputs in {out_dir}")
    return metrics


def main(argv: list[str] | None = None) -> dict | None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        family = make_task_family(args.env_name)
    except (ValueError, KeyError) as error:
        parser.error(str(error))
    config = build_config(args, parser, family)
    out_dir = args.out_dir or Path("runs") / f"{args.env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    if args.resume and not (out_dir / "checkpoint.pt").is_file():
        parser.error(f"--resume needs an existing checkpoint, {out_dir / 'checkpoint.pt'} does not exist")
    return run(config, out_dir, resume=args.resume, progress=not args.no_progress)


if __name__ == "__main__":
    main()
