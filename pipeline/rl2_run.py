"""`--algo rl2`: an RL² policy with SSM or GRU memory, the oracle and a random policy on the same tasks.

    run_rl2(config, out_dir, resume=False, progress=True) -> metrics

Stages, in the order they run:
1. splits      `sample_splits`: train tasks for training, val tasks for selection, test ("in_distribution")
               and OOD tasks read once, at the end
2. training    `train_rl2` for the memory policy (`config.rl2_memory`) and for the oracle (the same PPO and
               memory, the task's parameters appended to the observation), on the same per-iteration tasks;
               each writes train_<policy>.pt after every iteration, so `resume` ends with the same weights
3. evaluation  one trial of `config.rl2.episodes_per_trial` episodes per task; every policy meets the same
               reset seeds and tasks: val first, then test and OOD
4. outputs     config.json, metrics.json, checkpoint.pt, rl2_returns.png, rl2_training.png

metrics.json, besides env_name, seed, algo, config, tasks and timing:
    rl2.<split>.<policy>.episode_returns   list over the episodes of a trial of {"mean", "ci95", "per_task"}
                                           split: in_distribution | ood; policy: ssm | gru, oracle, random
    rl2_val.<policy>.episode_returns       the same on val tasks
    rl2_training.<policy>                  the training curve: one dict per iteration (losses, episode_returns)
checkpoint.pt: {"format", "config", "policies": {policy: {"state_dict", "obs_dim", "memory", "hidden_dim"}}},
written before training (no policies yet) and again after each policy is trained.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path

import matplotlib
import numpy as np

from core.checkpoint import atomic_save, load_marked_checkpoint
from core.seeding import derive_seed, seed_everything
from env_runner.environment import make_task_family
from env_runner.tasks import Task, TaskFamily
from meta_rl.rl2 import evaluate_rl2, random_policy_trial_returns, train_rl2
from meta_rl.rl2_policy import RecurrentActorCritic
from pipeline.config import PipelineConfig
from pipeline.data import sample_splits
from pipeline.report import summary

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

RL2_CHECKPOINT_FORMAT = "ssm-metarl rl2 checkpoint 1"


def read_rl2_checkpoint(path: Path) -> dict:
    """The checkpoint's contents; ValueError naming the file when it is not a readable RL² checkpoint."""
    return load_marked_checkpoint(path, RL2_CHECKPOINT_FORMAT, "ssm-metarl RL² checkpoint")


def run_rl2(config: PipelineConfig, out_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train, evaluate and report one seed; returns the metrics written to <out_dir>/metrics.json."""
    start_time = time.perf_counter()
    if int(os.environ.get("WORLD_SIZE", "1")) != 1:
        raise ValueError("--algo rl2 runs in a single process: launch it without torchrun")
    if config.device != "cpu":
        warnings.warn(f"--algo rl2 trains on the CPU; device {config.device!r} is not used", stacklevel=2)
    seed_everything(config.seed)
    family = make_task_family(config.env_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    names = (config.rl2_memory, "oracle")
    if resume:
        _check_resumable(checkpoint_path, config)
    else:  # a fresh run never picks up an earlier run's training state
        for name in names:
            (out_dir / f"train_{name}.pt").unlink(missing_ok=True)
        _save_checkpoint(checkpoint_path, config, {})
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    splits = sample_splits(family, config)

    policies, curves, train_s = {}, {}, {}
    for name in names:
        started = time.perf_counter()
        policies[name], curves[name] = train_rl2(
            family,
            splits.train,
            config.rl2,
            config.seed,
            memory=config.rl2_memory,
            oracle=name == "oracle",
            progress=progress,
            checkpoint_path=out_dir / f"train_{name}.pt",
        )
        train_s[name] = time.perf_counter() - started
        _save_checkpoint(checkpoint_path, config, policies)

    started = time.perf_counter()
    metrics = {
        "env_name": config.env_name,
        "seed": config.seed,
        "algo": "rl2",
        "config": config.to_dict(),
        "task_distribution": family.has_task_distribution,
        "tasks": {
            split: [{"params": task.params, "coefficients": family.coefficients(task)} for task in tasks]
            for split, tasks in splits.as_dict().items()
        },
        "rl2_val": _evaluate(family, splits.val, policies, config, "val") if splits.val else {},
        "rl2": {},
    }
    for split, tasks in (("in_distribution", splits.test), ("ood", splits.ood)):
        if tasks:
            metrics["rl2"][split] = _evaluate(family, tasks, policies, config, split)
    metrics["rl2_training"] = curves
    metrics["timing"] = {
        "total_s": time.perf_counter() - start_time,
        "train_s": train_s,
        "evaluate_s": time.perf_counter() - started,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _returns_plot(metrics, out_dir / "rl2_returns.png")
    _training_plot(metrics, out_dir / "rl2_training.png")
    if progress:
        print(_table(metrics))
    return metrics


def _check_resumable(path: Path, config: PipelineConfig) -> None:
    saved = PipelineConfig.from_dict(read_rl2_checkpoint(path)["config"])
    if saved != config:
        requested = config.to_dict()
        changed = {key: (value, requested[key]) for key, value in saved.to_dict().items() if requested[key] != value}
        raise ValueError(f"cannot resume {path}: the configuration differs (saved, requested): {changed}")


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
    family: TaskFamily, tasks: list[Task], policies: dict[str, RecurrentActorCritic], config: PipelineConfig, split: str
) -> dict:
    """{policy: {"episode_returns": [summary over tasks of episode e's return for e in the trial]}}; every policy,
    the random one included, meets the same tasks and reset seeds."""
    seed = derive_seed(config.seed, f"rl2-evaluate-{split}")
    returns = {name: evaluate_rl2(policy, family, tasks, config.rl2, seed) for name, policy in policies.items()}
    returns["random"] = random_policy_trial_returns(family, tasks, config.rl2, seed)
    return {
        name: {"episode_returns": [summary([row[e] for row in rows]) for e in range(config.rl2.episodes_per_trial)]}
        for name, rows in returns.items()
    }


def _table(metrics: dict) -> str:
    title = "RL² return per episode of a trial, mean [95% CI] over tasks"
    lines = [f"{metrics['env_name']} (seed {metrics['seed']}): {title}"]
    for split, by_policy in metrics["rl2"].items():
        for name, value in by_policy.items():
            cells = "  ".join(
                f"ep{e + 1}: {r['mean']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]"
                for e, r in enumerate(value["episode_returns"])
            )
            lines.append(f"  {split:<16}{name:<8}{cells}")
    lines.append(f"total time: {metrics['timing']['total_s']:.0f} s")
    return "\n".join(lines)


def _returns_plot(metrics: dict, path: Path) -> None:
    """Return against the episode index of a trial: each policy's mean with its interval, each task as a point."""
    splits = list(metrics["rl2"])
    if not splits:
        return
    figure, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4), squeeze=False)
    for axis, split in zip(axes[0], splits, strict=True):
        for offset, (name, value) in enumerate(metrics["rl2"][split].items()):
            episodes = value["episode_returns"]
            x = np.arange(1, len(episodes) + 1) + 0.08 * (offset - 1)
            means = [r["mean"] for r in episodes]
            errors = [
                [r["mean"] - r["ci95"][0] if math.isfinite(r["ci95"][0]) else 0 for r in episodes],
                [r["ci95"][1] - r["mean"] if math.isfinite(r["ci95"][1]) else 0 for r in episodes],
            ]
            line = axis.errorbar(x, means, yerr=errors, marker="o", capsize=3, label=name)
            for position, r in zip(x, episodes, strict=True):
                axis.scatter([position] * len(r["per_task"]), r["per_task"], s=6, alpha=0.4, color=line[0].get_color())
        axis.set_xticks(np.arange(1, len(episodes) + 1))
        axis.set(title=f"{metrics['env_name']}: {split}", xlabel="episode of the trial", ylabel="return")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _training_plot(metrics: dict, path: Path) -> None:
    """Mean return of each episode index over an iteration's training trials, against environment steps."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, curve in metrics["rl2_training"].items():
        steps = [row["env_steps"] for row in curve]
        for episode, returns in enumerate(zip(*(row["episode_returns"] for row in curve), strict=True)):
            axis.plot(steps, returns, label=f"{name} episode {episode + 1}")
    axis.set(title=f"{metrics['env_name']}: RL² training trials", xlabel="environment steps", ylabel="return")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
