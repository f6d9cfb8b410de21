"""Acting with the world models: the planner of each condition in many environments at once, the online
adaptation that feeds it, and the on-policy data that training collects the same way.

Planner conditions (`condition_rollouts`), each acting in one env per task:
- "tta": the planner on the meta-learned world model with online test-time adaptation (`OnlineAdapter`: MetaMAML's inner
  step on the recent window every `adapt.update_every` steps, from theta*, rolled back when it raises the
  window loss); the planner uses each episode's adapted weights and the state recomputed over the window;
- "memory_only": the same, with zero inner steps: the weights stay theta*, the state is recomputed over the
  same window as "tta" (`tta - memory_only` isolates the weight update);
- "no_tta": the planner on theta*, its state carried over the whole episode (`memory_only - no_tta`
  isolates memory length);
- "oracle": the planner on the oracle world model, given each task's true coefficients;
- "true_dynamics": the planner on the task's true physics (the ceiling), where available.
The conditions that do not know the task (tta, memory_only, no_tta) act uniformly at random for the first
`config.explore_steps` steps of every episode (0 by default): with a learned reward the model must see the task's
rewards before planning on them can find the goal.
Training's on-policy rows act as "tta" does (GrBAL style); the control evaluation runs every condition
(`pipeline.control`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from adaptation.online import OnlineAdaptationConfig, OnlineAdapter
from core.seeding import derive_seed
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer
from env_runner.tasks import Task, TaskFamily
from meta_rl.meta_maml import MetaMAML
from pipeline.config import PipelineConfig
from pipeline.data import TaskContext, evaluation_reset_seed
from pipeline.models import WorldModels
from planning.dynamics import Dynamics, LearnedDynamics, predicts_reward
from planning.episode import TransitionHook, first_episode_returns, run_episodes
from planning.planner import make_planner
from planning.true_dynamics import true_dynamics

PLANNER_CONDITIONS = ("tta", "memory_only", "no_tta", "oracle", "true_dynamics")
LEARNED_MODEL_CONDITIONS = ("tta", "memory_only", "no_tta")  # the meta-learned model, the task unknown: they explore


def act(
    family: TaskFamily,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    steps: int,
    dynamics: Dynamics,
    config: PipelineConfig,
    planner_seed: int,
    hook: TransitionHook | None = None,
    until_first_done: bool = False,
    explore_steps: int = 0,
) -> Rollouts:
    """One planner (`config.planner.method`) acting in one env per task (E = len(tasks)) for `steps` steps; a row
    per env; the first `explore_steps` steps of every episode act uniformly at random.

    The planner scores with the reward the dynamics predict where they do (a world model that learned the reward),
    else with the family's planning reward.
    """
    planner = make_planner(
        dynamics,
        None if predicts_reward(dynamics) else family.planning_reward_fn(tasks),
        family.action_space,
        config.planner,
        seed=planner_seed,
        num_episodes=len(tasks),
        termination_fn=family.batch_termination_fn(tasks),
    )
    envs = [family.make_env(task) for task in tasks]
    try:
        return run_episodes(
            envs,
            planner,
            seeds,
            steps,
            on_transition=hook,
            until_first_done=until_first_done,
            explore_steps=explore_steps,
            explore_seed=planner_seed,
        )
    finally:
        for env in envs:
            env.close()


def online_adaptation_hook(
    meta: MetaMAML, normalizer: Normalizer, settings: OnlineAdaptationConfig, num_envs: int
) -> TransitionHook:
    """Feed each real transition to an `OnlineAdapter`; hand its per-episode weights and states to the planner."""
    online = OnlineAdapter(meta, settings, num_envs)

    def on_transition(obs, action, next_obs, reward, episode_start, hidden_before):
        target = normalizer.targets(obs, next_obs, reward)
        log = online.observe(normalizer.inputs(obs, action), target, episode_start, hidden_before)
        return None if log is None else (log["params"], log["hidden_state"])

    return on_transition


def condition_rollouts(
    condition: str,
    family: TaskFamily,
    tasks: Sequence[Task],
    seeds: Sequence[int],
    steps: int,
    models: WorldModels,
    normalizer: Normalizer,
    context: TaskContext,
    config: PipelineConfig,
    planner_seed: int,
    until_first_done: bool = False,
) -> Rollouts:
    """The planner of `condition` (any but "random") acting on `tasks` (one env each)."""
    hook = None
    if condition == "true_dynamics":
        dynamics = true_dynamics(family, list(tasks))
    elif condition == "oracle":
        dynamics = LearnedDynamics(
            models.oracle_model, normalizer, len(tasks), context(list(tasks)), models.head, planner_seed
        )
    elif condition in ("tta", "memory_only", "no_tta"):
        dynamics = LearnedDynamics(models.maml_model, normalizer, len(tasks), head=models.head, seed=planner_seed)
        if condition != "no_tta":
            settings = config.adapt if condition == "tta" else replace(config.adapt, num_steps=0)
            hook = online_adaptation_hook(models.learner, normalizer, settings, len(tasks))
    else:
        raise ValueError(f"unknown planner condition {condition!r}: expected one of {PLANNER_CONDITIONS}")
    explore_steps = config.explore_steps if condition in LEARNED_MODEL_CONDITIONS else 0
    return act(family, tasks, seeds, steps, dynamics, config, planner_seed, hook, until_first_done, explore_steps)


def control_episodes(tasks: Sequence[Task], split: str, config: PipelineConfig) -> tuple[list[Task], list[int], int]:
    """The control evaluation's episodes on `tasks` (all of them): each task repeated `control_episodes` times
    (task-major), each episode's env reset seed, and the planner seed. Every condition uses the same ones."""
    repeats = config.control_episodes
    episode_tasks = [task for task in tasks for _ in range(repeats)]
    seeds = [
        evaluation_reset_seed(config.seed, split, index, episode)
        for index in range(len(tasks))
        for episode in range(repeats)
    ]
    return episode_tasks, seeds, derive_seed(config.seed, f"planner-{split}")


def collect_onpolicy(
    family: TaskFamily,
    tasks: list[Task],
    models: WorldModels,
    normalizer: Normalizer,
    context: TaskContext,
    config: PipelineConfig,
    epoch: int,
    generator: torch.Generator,
) -> Rollouts:
    """`onpolicy_steps` transitions in each of `onpolicy_tasks` rows, acting as "tta" does at test time: the rows take
    training tasks in a random order, and further random orders where there are more rows than tasks (a task's
    repeats start from reset seeds of their own)."""
    orders = -(-config.onpolicy_tasks // len(tasks))  # ceil
    chosen = torch.cat([torch.randperm(len(tasks), generator=generator) for _ in range(orders)])
    chosen = chosen[: config.onpolicy_tasks].tolist()
    chosen_tasks = [tasks[index] for index in chosen]
    repeats = [chosen[:row].count(index) for row, index in enumerate(chosen)]
    seeds = [
        derive_seed(config.seed, "onpolicy", epoch, index, *([repeat] if repeat else []))
        for index, repeat in zip(chosen, repeats, strict=True)
    ]
    rollouts = condition_rollouts(
        "tta",
        family,
        chosen_tasks,
        seeds,
        config.onpolicy_steps,
        models,
        normalizer,
        context,
        config,
        derive_seed(config.seed, "onpolicy-planner", epoch),
    )
    return replace(rollouts, task_index=torch.tensor(chosen), tasks=tuple(tasks))


def val_returns(
    family: TaskFamily,
    tasks: list[Task],
    models: WorldModels,
    normalizer: Normalizer,
    context: TaskContext,
    config: PipelineConfig,
    epoch: int,
) -> list[float]:
    """One "tta" episode's return on each of the val `tasks` (the learning curve's point after `epoch`), from the
    val split's evaluation reset seeds; planner seeds of their own, so training is the same with or without it."""
    seeds = [evaluation_reset_seed(config.seed, "val", index, 0) for index in range(len(tasks))]
    rollouts = condition_rollouts(
        "tta",
        family,
        tasks,
        seeds,
        config.episode_steps,
        models,
        normalizer,
        context,
        config,
        derive_seed(config.seed, "curve-planner", epoch),
        until_first_done=True,
    )
    return first_episode_returns(rollouts)
