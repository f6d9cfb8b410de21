"""Episodes in a real gymnasium env: a planner acting (with an optional adaptation hook), or random actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from control.planner import ShootingPlanner
from core.parameters import Params
from env_runner.actions import to_model_action
from env_runner.tasks import Task, TaskFamily

ModelUpdate = tuple[Params, torch.Tensor]
TransitionHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], ModelUpdate | None]


@dataclass
class Episode:
    """The transitions of one episode: obs, next_obs (T, obs_dim), action (T, action_dim) model actions,
    reward, terminated, truncated (T,)."""

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor

    @property
    def total_return(self) -> float:
        return float(self.reward.sum())

    def __len__(self) -> int:
        return self.obs.shape[0]


def run_episode(
    env: gym.Env,
    planner: ShootingPlanner,
    *,
    seed: int | None = None,
    max_steps: int | None = None,
    on_transition: TransitionHook | None = None,
) -> Episode:
    """Let `planner` act in `env` for one episode and return its transitions.

    The planner's dynamics start from `init_hidden(1)` and advance with `observe` on every real
    transition. `on_transition(obs (obs_dim,), model action (action_dim,), next_obs (obs_dim,),
    episode_start)` runs after each step, once the state has advanced; when it returns
    `(params, hidden (1, N))`, the dynamics use those weights from the next planning step on
    (`set_params`) and the real trajectory's state becomes `hidden` (the state reached under those
    weights). The episode ends when the env terminates or truncates, or after `max_steps` steps.
    """
    dynamics = planner.dynamics
    if on_transition is not None and not callable(getattr(dynamics, "set_params", None)):
        raise TypeError(f"{type(dynamics).__name__} has no set_params: on_transition cannot swap its weights")
    obs_np, _ = env.reset(seed=seed)
    planner.reset()
    hidden = dynamics.init_hidden(1)
    columns: dict[str, list] = {name: [] for name in ("obs", "action", "next_obs", "reward", "terminated", "truncated")}
    done = False
    while not done and (max_steps is None or len(columns["obs"]) < max_steps):
        obs = torch.as_tensor(obs_np, dtype=torch.float32, device=dynamics.device)
        env_action = planner.plan(obs, hidden)
        next_obs_np, reward, terminated, truncated, _ = env.step(env_action)
        model_action = to_model_action(np.asarray(env_action), planner.action_space).to(dynamics.device)
        next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=dynamics.device)
        hidden = dynamics.observe(obs[None], model_action[None], hidden)
        if on_transition is not None:
            update = on_transition(obs, model_action, next_obs, len(columns["obs"]) == 0)
            if update is not None:
                params, hidden = update
                dynamics.set_params(params)
        for name, value in (("obs", obs), ("action", model_action), ("next_obs", next_obs), ("reward", reward),
                            ("terminated", terminated), ("truncated", truncated)):
            columns[name].append(value)
        done = terminated or truncated
        obs_np = next_obs_np
    return Episode(
        obs=torch.stack(columns["obs"]).cpu(),
        action=torch.stack(columns["action"]).cpu(),
        next_obs=torch.stack(columns["next_obs"]).cpu(),
        reward=torch.tensor(columns["reward"], dtype=torch.float32),
        terminated=torch.tensor(columns["terminated"], dtype=torch.bool),
        truncated=torch.tensor(columns["truncated"], dtype=torch.bool),
    )


def random_policy_return(family: TaskFamily, task: Task, seed: int, max_steps: int) -> float:
    """Return of one episode of uniformly random actions (env and action sampling seeded by `seed`)."""
    env = family.make_env(task)
    try:
        env.reset(seed=seed)
        env.action_space.seed(seed)
        total = 0.0
        for _ in range(max_steps):
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            if terminated or truncated:
                break
        return total
    finally:
        env.close()
