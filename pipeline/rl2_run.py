"""`--algo rl2`: an RL² policy with SSM or GRU memory, the oracle and a random policy on the same tasks.

    run_rl2(config, out_dir, resume=False, progress=True) -> metrics

Stages, in the order they run:
1. splits      `sample_splits`: train tasks for training, val tasks for selection, test ("in_distribution")
               and OOD tasks read once, at the end
2. training    `train_rl2` for the memory policy (`config.rl2_memory`) and, where tasks differ, for the oracle (the
               same PPO and memory, the task's parameters appended to the observation), on the same tasks;
               each writes train_<policy>.pt after every iteration, so `resume` ends with the same weights
3. evaluation  one trial of `config.rl2.episodes_per_trial` episodes per task; every policy meets the same
               reset seeds and tasks: val first, then test and OOD
4. outputs     config.json, metrics.json, checkpoint.pt, rl2_returns.png, rl2_training.png

metrics.json, besides env_name, seed, algo, config, provenance, tasks and timing:
    rl2.<split>.<policy>.episode_returns   list over the episodes of a trial of {"mean", "ci95", "per_task"}
                                           split: in_distribution | ood; policy: ssm | gru, oracle, random
    rl2_val.<policy>.episode_returns       the same on val tasks
    rl2_longer.<N>.<split>.<policy>        the same in trials of N episodes (`--rl2.longer_trials`), the same policies
    rl2_longer_episodes.<N>.in_distribution.<policy>
                                           {"part_returns": [...]}: test tasks in episodes N times as long
                                           (`--rl2.longer_episodes`), each trained-length part's return on the
                                           trained scale
    rl2_training.<policy>                  the training curve: one dict per iteration (losses, episode_returns)
    rl2_mmer.<policy>                      POPGym's MMER: the max over training iterations of the mean episodic
                                           return (`meta_rl.rl2.mmer`)
    rl2_parameters.<policy>                the policy's parameter count
    rl2_throughput.<policy>                environment steps per second of its training (collection and updates);
                                           null for a resumed run
    rl2_selection.<policy>                 {"iteration": the best val iterate, whose weights are evaluated (None:
                                           no val tasks, the last iterate), "collapsed": `meta_rl.rl2.collapsed`}
checkpoint.pt: {"format", "config", "policies": {policy: {"state_dict", "obs_dim", "memory", "hidden_dim"}}},
written before training (no policies yet) and again after each policy is trained.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

from core.checkpoint import atomic_save, atomic_write_json, load_marked_checkpoint
from core.seeding import derive_seed, seed_everything
from env_runner.environment import make_task_family
from env_runner.tasks import Task, TaskFamily
from meta_rl.distributed import launched_rank_and_world_size
from meta_rl.rl2 import best_val_iteration, collapsed, evaluate_rl2, mmer, train_rl2
from meta_rl.rl2_policy import RecurrentActorCritic
from pipeline.config import PipelineConfig, check_resumable
from pipeline.data import evaluation_reset_seed, run_header, sample_splits
from pipeline.provenance import command_line
from pipeline.report.plots import write_run_plots
from pipeline.report.statistics import task_summary
from pipeline.report.tensorboard import CurveLog

RL2_CHECKPOINT_FORMAT = "ssm-metarl rl2 checkpoint 1"


def read_rl2_checkpoint(path: Path) -> dict:
    """The checkpoint's contents; ValueError naming the file when it is not a readable RL² checkpoint."""
    return load_marked_checkpoint(path, RL2_CHECKPOINT_FORMAT, "ssm-metarl RL² checkpoint")


def run_rl2(
    config: PipelineConfig,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: Path | None = None,
) -> dict:
    """Train, evaluate and report one seed; returns the metrics written to <out_dir>/metrics.json. `argv`: the
    command line the provenance records (default: this process's); `tensorboard`: a folder each policy's training
    curve is logged to (a subfolder per policy) as it is made."""
    start_time = time.perf_counter()
    if launched_rank_and_world_size()[1] != 1:
        raise ValueError("--algo rl2 runs in a single process: launch it without torchrun")
    if config.device != "cpu":
        warnings.warn(f"--algo rl2 trains on the CPU; device {config.device!r} is not used", stacklevel=2)
    seed_everything(config.seed)
    family = make_task_family(config.env_name, protocol=config.protocol)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    # the oracle reads the task's parameters: a single-task family (a POPGym POMDP) has none to give it
    names = (config.rl2_memory, "oracle") if family.has_task_distribution else (config.rl2_memory,)
    if resume:
        check_resumable(
            PipelineConfig.from_dict(read_rl2_checkpoint(checkpoint_path)["config"]), config, checkpoint_path
        )
    else:  # a fresh run never picks up an earlier run's training state
        for name in names:
            (out_dir / f"train_{name}.pt").unlink(missing_ok=True)
        _save_checkpoint(checkpoint_path, config, {})
    atomic_write_json(config.to_dict(), out_dir / "config.json")
    splits = sample_splits(family, config)

    policies, curves, train_s = {}, {}, {}
    for name in names:
        started = time.perf_counter()
        log = CurveLog(tensorboard / name) if tensorboard is not None else None
        try:
            policies[name], curves[name] = train_rl2(
                family,
                splits.train,
                config.rl2,
                config.seed,
                memory=config.rl2_memory,
                oracle=name == "oracle",
                progress=progress,
                checkpoint_path=out_dir / f"train_{name}.pt",
                val_tasks=splits.val,
                on_iteration=log,
            )
        finally:
            if log is not None:
                log.close()
        train_s[name] = time.perf_counter() - started
        _save_checkpoint(checkpoint_path, config, policies)

    started = time.perf_counter()
    metrics = {
        **run_header(config, family, splits, command_line() if argv is None else argv),
        "algo": "rl2",
        "env_steps": {
            "random": 0,
            "onpolicy": curves[config.rl2_memory][-1]["env_steps"],
        },  # the learner's, not the oracle's
        "rl2_val": _evaluate(family, splits.val, policies, config, "val") if splits.val else {},
        "rl2": {},
    }
    for split, tasks in (("in_distribution", splits.test), ("ood", splits.ood)):
        if tasks:
            metrics["rl2"][split] = _evaluate(family, tasks, policies, config, split)
    if config.rl2.longer_trials:
        metrics["rl2_longer"] = {
            str(length): {
                split: _evaluate(family, tasks, policies, _with_trial_length(config, length), split)
                for split, tasks in (("in_distribution", splits.test), ("ood", splits.ood))
                if tasks
            }
            for length in config.rl2.longer_trials
        }
    if config.rl2.longer_episodes:
        metrics["rl2_longer_episodes"] = {
            str(factor): {
                "in_distribution": _evaluate(
                    family.longer_episodes(factor), splits.test, policies, config, "in_distribution", factor
                )
            }
            for factor in config.rl2.longer_episodes
        }
    metrics["rl2_training"] = curves
    metrics["rl2_mmer"] = {name: mmer(curve) for name, curve in curves.items()}
    metrics["rl2_parameters"] = {name: sum(p.numel() for p in policy.parameters()) for name, policy in policies.items()}
    # a resumed run's seconds count from the restart and its steps from the start: no throughput to report
    metrics["rl2_throughput"] = (
        None if resume else {name: curve[-1]["env_steps"] / train_s[name] for name, curve in curves.items()}
    )
    metrics["rl2_selection"] = {
        name: {"iteration": best_val_iteration(curve), "collapsed": collapsed(curve)} for name, curve in curves.items()
    }
    metrics["timing"] = {
        "total_s": time.perf_counter() - start_time,
        "train_s": train_s,
        "evaluate_s": time.perf_counter() - started,
        "resumed": resume,  # then the seconds count from the restart
    }
    atomic_write_json(metrics, out_dir / "metrics.json")
    write_run_plots(metrics, out_dir)
    return metrics


def _with_trial_length(config: PipelineConfig, episodes: int) -> PipelineConfig:
    """`config` playing trials of `episodes` episodes (evaluation only)."""
    return replace(config, rl2=replace(config.rl2, episodes_per_trial=episodes, longer_trials=()))


def _save_checkpoint(path: Path, config: PipelineConfig, policies: dict[str, RecurrentActorCritic]) -> None:
    """The run's checkpoint: its config and the trained policies' final weights (training state is in train_*.pt)."""
    atomic_save(
        {
            "format": RL2_CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "policies": {
                name: {
                    "state_dict": policy.state_dict(),
                    "obs_dim": policy.obs_dim,
                    "memory": config.rl2_memory,
                    "hidden_dim": config.rl2.hidden_dim,
                }
                for name, policy in policies.items()
            },
        },
        path,
    )


def _evaluate(
    family: TaskFamily,
    tasks: list[Task],
    policies: dict[str, RecurrentActorCritic],
    config: PipelineConfig,
    split: str,
    parts: int | None = None,
) -> dict:
    """{policy: {"episode_returns": [summary over tasks of episode e's return for e in the trial]}}; every policy,
    the random one included, meets the same tasks and reset seeds: each trial starts from the reset of the model-based
    pipeline's first evaluation episode on its task (`evaluation_reset_seed`), so the two methods are compared from the
    same initial states.

    `parts` N (episodes N times as long as training's): {policy: {"part_returns": [...]}}, the return of each of the
    trial's N equal parts times N, on the trained episode's scale (POPGym pays +-1 / the episode's length a step).
    """
    seed = derive_seed(config.seed, f"rl2-evaluate-{split}")
    resets = [evaluation_reset_seed(config.seed, task.split, index, 0) for index, task in enumerate(tasks)]
    returns = {
        name: evaluate_rl2(policy, family, tasks, config.rl2, seed, resets, parts)
        for name, policy in {**policies, "random": None}.items()
    }
    if parts is not None:
        return {
            name: {"part_returns": [task_summary([row[p] * parts for row in rows]) for p in range(parts)]}
            for name, rows in returns.items()
        }
    return {
        name: {
            "episode_returns": [task_summary([row[e] for row in rows]) for e in range(config.rl2.episodes_per_trial)]
        }
        for name, rows in returns.items()
    }
