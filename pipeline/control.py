"""Control on held-out tasks: every condition's episode returns on the first `control_tasks` tasks of a split,
`control_episodes` episodes each (the true dynamics, the costliest planner, `ceiling_episodes`: the first of them),
from the same env reset seeds and the same planner seed in every condition (so differences are paired per task).

Conditions: the planner conditions of `pipeline.acting` ("tta", "memory_only", "no_tta", "oracle",
"true_dynamics" where the family has its physics as a batched model) and "random" (uniformly random actions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from core.progress import progress_bar
from env_runner.rollouts import Rollouts
from env_runner.tasks import Task
from pipeline.acting import condition_rollouts, control_episodes
from pipeline.config import PipelineConfig
from pipeline.report.statistics import episode_summary
from pipeline.world import World
from planning.episode import first_episode_returns, random_episode_returns
from planning.true_dynamics import has_true_dynamics

CONDITIONS = ("tta", "memory_only", "no_tta", "oracle", "random", "true_dynamics")


def control_tasks(world: World, split: str, config: PipelineConfig) -> list[Task]:
    """The tasks of `split` that control runs on: its first `config.control_tasks`."""
    return world.splits.as_dict()[split][: config.control_tasks]


def planner_rollouts(world: World, config: PipelineConfig, split: str, condition: str) -> Rollouts:
    """The planner of `condition` under `config` on the split's control episodes, each until its first end; the
    true dynamics on the first `ceiling_episodes` of each task's."""
    if condition == "true_dynamics" and config.ceiling_episodes is not None:
        config = replace(config, control_episodes=config.ceiling_episodes)
    episode_tasks, seeds, planner_seed = control_episodes(control_tasks(world, split, config), split, config)
    return condition_rollouts(
        condition,
        world.family,
        episode_tasks,
        seeds,
        config.episode_steps,
        world.models,
        world.normalizer,
        world.context,
        config,
        planner_seed,
        until_first_done=True,
    )


def condition_returns(world: World, config: PipelineConfig, split: str, condition: str) -> list[float]:
    """The return of every control episode of `condition` on `split`, task-major (`control_episodes` per task)."""
    if condition == "random":
        episode_tasks, seeds, _ = control_episodes(control_tasks(world, split, config), split, config)
        return random_episode_returns(world.family, episode_tasks, seeds, config.episode_steps)
    return first_episode_returns(planner_rollouts(world, config, split, condition))


def evaluate_control(world: World, split: str, progress: bool = True) -> dict:
    """Episode returns of every condition on the split's control tasks.

    Returns {condition: {"mean", "ci95": [lo, hi], "per_task": [...], "episodes": [[...] per task]}}; the
    interval is Student-t over per-task means. Under a published protocol the OOD split's conditions add
    "per_setting" (each test setting's mean over its tasks) and "setting_mean" (their unweighted mean, the
    protocol's overall figure).
    """
    conditions = [c for c in CONDITIONS if c != "true_dynamics" or has_true_dynamics(world.family)]
    results = {}
    for condition in progress_bar(conditions, progress, f"control on {split} tasks"):
        returns = condition_returns(world, world.config, split, condition)
        results[condition] = episode_summary(_by_task(returns, episodes_per_task(world.config, condition)))
    table = world.family.protocol_table
    if split == "ood" and table is not None:
        params = [task.params for task in control_tasks(world, split, world.config)]
        for value in results.values():
            value["per_setting"] = table.setting_means(params, value["per_task"])
            value["setting_mean"] = float(np.mean([mean for mean in value["per_setting"] if mean is not None]))
    return results


def episodes_per_task(config: PipelineConfig, condition: str) -> int:
    """The control episodes `condition` runs per task: `control_episodes`, the true dynamics `ceiling_episodes`."""
    if condition == "true_dynamics" and config.ceiling_episodes is not None:
        return config.ceiling_episodes
    return config.control_episodes


def _by_task(returns: Sequence[float], repeats: int) -> list[list[float]]:
    return [list(returns[i : i + repeats]) for i in range(0, len(returns), repeats)]
