"""One run (one seed), stage by stage in the order they run:

    world       tasks, random-policy data, the world models trained (`pipeline.world.train_world`)
    prediction  ERM's fine-tuning selected on val tasks, then query MSE on test and OOD tasks
    control     every condition on the test tasks, then on the OOD tasks
    outputs     metrics.json (with the protocol, the environment steps trained on and the learning curve: val-task
                return against them) and the plots (config.json
                and checkpoint.pt come with training); until the run ends, metrics.partial.json holds the stages
                finished so far

    metrics = run(config, out_dir)       `config.algo == "rl2"` runs `pipeline.rl2_run.run_rl2` instead

Selection reads val tasks only; test and OOD tasks are read once, at the end. Under torchrun the ranks share
the data and training stages; the evaluation runs in rank 0 alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch.distributed as dist

from core.checkpoint import atomic_write_json
from meta_rl.distributed import is_main_process, launched_rank_and_world_size, rank_and_world_size
from pipeline.config import PipelineConfig, resolve_device
from pipeline.control import evaluate_control
from pipeline.data import run_header
from pipeline.prediction import evaluate_prediction
from pipeline.provenance import command_line
from pipeline.report.plots import write_run_plots
from pipeline.report.tensorboard import CurveLog
from pipeline.rl2_run import run_rl2
from pipeline.world import train_world


def setup_distributed(config: PipelineConfig) -> PipelineConfig:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if launched_rank_and_world_size()[1] == 1:
        return config
    # torch.distributed.nn.functional binds the default group into its functions' defaults when it is imported
    # (which the first optimizer does, through torch._dynamo). Imported after the group exists, it keeps the group
    # alive past destroy_process_group, so gloo's worker threads outlive the interpreter and abort the exiting
    # rank ("terminate called without an active exception"). Imported first, it binds None.
    import torch.distributed.nn.functional  # noqa: F401

    if config.device.startswith("cuda"):
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return replace(config, device=f"cuda:{local_rank}")
    dist.init_process_group("gloo")
    return config


LEARNING_CURVE_KEYS = ("epoch", "env_steps", "onpolicy_return", "val_return", "val_returns")


def learning_curve(curve: list[dict]) -> list[dict]:
    """The training curve's rows that measured a return (`pipeline.training`), with the env steps behind each."""
    return [
        {key: row[key] for key in LEARNING_CURVE_KEYS if key in row}
        for row in curve
        if "val_return" in row or "onpolicy_return" in row
    ]


def run(
    config: PipelineConfig,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: Path | None = None,
) -> dict | None:
    """The whole pipeline for one seed; returns the metrics written to <out_dir>/metrics.json (None on ranks
    other than 0). `argv`: the command line the provenance records (default: this process's); `tensorboard`: a
    folder the training curves are logged to as they are made."""
    config = replace(config, device=resolve_device(config.device))
    argv = command_line() if argv is None else argv
    if config.algo == "rl2":
        return run_rl2(config, out_dir, resume, progress, argv, tensorboard)
    start_time = time.perf_counter()
    config = setup_distributed(config)
    main_process, world_size = is_main_process(), rank_and_world_size()[1]
    stages: dict[str, float] = {}
    log = CurveLog(tensorboard) if tensorboard is not None and main_process else None
    try:
        world = train_world(config, out_dir, resume, progress and main_process, stages, log)
    finally:
        if log is not None:
            log.close()
        if dist.is_initialized():
            dist.destroy_process_group()
    if not main_process:
        return None
    family, config = world.family, world.config
    metrics = run_header(config, family, world.splits, argv)
    metrics.update(evaluate_prediction(world, progress))
    stages["prediction_s"] = time.perf_counter() - start_time - sum(stages.values())
    atomic_write_json(metrics, out_dir / "metrics.partial.json")  # a stage's results are kept before the next can fail
    if config.control:
        for key, split in (("control", "test"), ("control_ood", "ood")):
            if world.splits.as_dict()[split]:
                metrics[key] = evaluate_control(world, split, progress)
                stages[f"{key}_s"] = time.perf_counter() - start_time - sum(stages.values())
                atomic_write_json(metrics, out_dir / "metrics.partial.json")
    metrics["env_steps"] = {
        "random": config.random_steps,
        "onpolicy": world.dataset.num_envs * world.dataset.steps - config.random_steps,
    }
    metrics["learning_curve"] = learning_curve(world.curve)
    metrics["training"] = {
        "final_losses": world.last_losses,
        "curve": world.curve,
        "world_size": world_size,
        "skipped_meta_updates": world.models.learner.skipped_updates,
        "skipped_updates": world.models.skipped(),
        "transitions": world.dataset.num_envs * world.dataset.steps,
    }
    # a resumed run's seconds count from its restart: the training before the interruption is not in them
    metrics["timing"] = {"total_s": time.perf_counter() - start_time, "stages": stages, "resumed": resume}
    atomic_write_json(metrics, out_dir / "metrics.json")
    (out_dir / "metrics.partial.json").unlink(missing_ok=True)
    write_run_plots(metrics, out_dir)
    return metrics
