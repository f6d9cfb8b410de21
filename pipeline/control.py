"""Control with the world model: on-policy data collection (GrBAL style) and the evaluation on held-out tasks.

Conditions on each held-out task, all from the same env reset seed:
- "tta": CEM on the meta-learned SSM with online test-time adaptation (Adapter in restart mode on the
  recent window, every `adapt_every` steps, an update that raises the window loss rolled back; the planner
  then uses the adapted weights and the state reached under them);
- "no_tta": the same planner on the meta-learned weights, never adapted;
- "random": uniformly random actions;
- "true_dynamics": the same planner on the task's true physics (the ceiling), where available.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm import tqdm

from adaptation.online import OnlineAdapter
from adaptation.test_time_adaptation import AdaptationConfig, Adapter
from control.dynamics import LearnedDynamics
from control.episode import Episode, TransitionHook, random_policy_return, run_episode
from control.planner import CEMPlanner, PlannerConfig
from control.true_dynamics import true_dynamics
from core.ssm import SSM
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer
from env_runner.tasks import Task, TaskFamily
from meta_rl.distributed import all_gather_objects, shard
from pipeline.config import PipelineConfig
from pipeline.statistics import mean_and_ci95


def _planner(dynamics, family: TaskFamily, task: Task, config: PipelineConfig, seed: int) -> CEMPlanner:
    settings = PlannerConfig(
        horizon=config.planner_horizon,
        num_candidates=config.planner_candidates,
        num_iterations=config.planner_iterations,
    )
    return CEMPlanner(dynamics, family.reward_fn(task), family.action_space, settings, seed=seed)


def _adaptation_hook(model: SSM, normalizer: Normalizer, config: PipelineConfig) -> TransitionHook:
    """Feed each real transition to an OnlineAdapter; hand its weights and state to the planner after updates."""
    adapter = Adapter(model, AdaptationConfig(
        learning_rate=config.inner_lr if config.adapt_lr is None else config.adapt_lr,
        num_steps=config.adapt_steps,
        grad_clip_norm=config.inner_grad_clip,
        window=config.adapt_window,
        update_every=config.adapt_every,
        mode="restart",
        window_state=config.adapt_window_state,
        max_loss_increase=config.adapt_max_loss_increase,
    ))
    online = OnlineAdapter(adapter)

    def on_transition(obs, action, next_obs, episode_start):
        x = normalizer.inputs(obs, action)
        y = normalizer.targets(obs, next_obs)
        if online.observe(x, y, episode_start) is None:
            return None
        return online.params(), online.hidden_state

    return on_transition


def planner_episode(
    family: TaskFamily, task: Task, model: SSM, normalizer: Normalizer, config: PipelineConfig, *, adapt: bool,
    seed: int, max_steps: int,
) -> Episode:
    """One episode of CEM on `model`, adapted online when `adapt` (on a copy: `model` is left as it is)."""
    acting = copy.deepcopy(model) if adapt else model
    dynamics = LearnedDynamics(acting, normalizer)
    hook = _adaptation_hook(acting, normalizer, config) if adapt else None
    env = family.make_env(task)
    try:
        return run_episode(env, _planner(dynamics, family, task, config, seed), seed=seed, max_steps=max_steps,
                           on_transition=hook)
    finally:
        env.close()


def collect_onpolicy(
    family: TaskFamily, tasks: list[Task], model: SSM, normalizer: Normalizer, config: PipelineConfig, epoch: int,
    generator: torch.Generator, progress: bool = True,
) -> Rollouts:
    """`onpolicy_steps` transitions on each of `onpolicy_tasks` training tasks, acting as at test time.

    Under torch.distributed each rank collects a share of the tasks and all ranks gather every row.
    """
    chosen = torch.randperm(len(tasks), generator=generator)[: config.onpolicy_tasks].tolist()
    local = []
    for position in tqdm(shard(range(len(chosen))), desc=f"on-policy data (epoch {epoch + 1})", leave=False,
                         disable=not progress):
        episodes, steps = [], 0
        while steps < config.onpolicy_steps:
            seed = config.seed + 100_000 * (epoch + 1) + 1000 * position + len(episodes)
            episode = planner_episode(family, tasks[chosen[position]], model, normalizer, config, adapt=True,
                                      seed=seed, max_steps=config.onpolicy_steps - steps)
            episodes.append(episode)
            steps += len(episode)
        local.append((position, episodes))
    rows = sorted((item for part in all_gather_objects(local) for item in part), key=lambda item: item[0])
    return _as_rollouts([episodes for _, episodes in rows], [tasks[index] for index in chosen])


def _as_rollouts(rows: list[list[Episode]], tasks: list[Task]) -> Rollouts:
    """One row per task: its episodes back to back, with an episode start at each episode's first step."""
    def stack(name: str) -> torch.Tensor:
        return torch.stack([torch.cat([getattr(episode, name) for episode in row]) for row in rows])

    starts = []
    for row in rows:
        start = torch.zeros(sum(len(episode) for episode in row), dtype=torch.bool)
        start[np.cumsum([0] + [len(episode) for episode in row[:-1]])] = True
        starts.append(start)
    return Rollouts(
        obs=stack("obs"), action=stack("action"), next_obs=stack("next_obs"), reward=stack("reward"),
        terminated=stack("terminated"), truncated=stack("truncated"), episode_start=torch.stack(starts),
        task_index=torch.arange(len(tasks)), tasks=tuple(tasks),
    )


def _true_dynamics_return(family: TaskFamily, task: Task, config: PipelineConfig, seed: int) -> float:
    env = family.make_env(task)
    try:
        planner = _planner(true_dynamics(family, task), family, task, config, seed)
        return run_episode(env, planner, seed=seed, max_steps=config.episode_steps).total_return
    finally:
        env.close()


def evaluate_control(
    family: TaskFamily, tasks: list[Task], model: SSM, normalizer: Normalizer, config: PipelineConfig,
    progress: bool = True,
) -> dict:
    """Mean episode return per condition over the first `control_tasks` held-out tasks (one episode each)."""
    returns: dict[str, list[float]] = {"tta": [], "no_tta": [], "random": [], "true_dynamics": []}
    notes = []
    for index, task in enumerate(tqdm(tasks[: config.control_tasks], desc="control", disable=not progress)):
        seed = config.seed + 10_000 + index
        for condition, adapt in (("tta", True), ("no_tta", False)):
            episode = planner_episode(family, task, model, normalizer, config, adapt=adapt, seed=seed,
                                      max_steps=config.episode_steps)
            returns[condition].append(episode.total_return)
        returns["random"].append(random_policy_return(family, task, seed, config.episode_steps))
        try:
            returns["true_dynamics"].append(_true_dynamics_return(family, task, config, seed))
        except NotImplementedError as error:
            notes.append(str(error))
    if not returns["true_dynamics"]:
        del returns["true_dynamics"]
    summaries = {condition: mean_and_ci95(values) for condition, values in returns.items()}
    result: dict = {condition: mean for condition, (mean, _) in summaries.items()}
    result["ci95"] = {condition: ci for condition, (_, ci) in summaries.items()}
    result["per_task"] = returns
    result["episode_steps"] = config.episode_steps
    if notes:
        result["notes"] = sorted(set(notes))
    return result
