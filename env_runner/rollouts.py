"""Rollout collection: run a policy on tasks in one gymnasium vector env, keep only real transitions.

The vector env autoresets in the same step (`AutoresetMode.SAME_STEP`): a step that ends an episode
returns the reset observation and reports the true final observation in `info["final_obs"]`. Every
step is therefore one real transition per env, `next_obs` is the true next observation (terminal or
truncation observation, never the reset one), and `episode_start` marks the transition that follows
a reset. No fake autoreset transitions exist in the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from env_runner.actions import as_env_action, to_model_action
from env_runner.tasks import Task, TaskFamily

Policy = Callable[[torch.Tensor], torch.Tensor | np.ndarray]


@dataclass
class Rollouts:
    """Transitions of N envs over T steps each, row-major by task (row = task * envs_per_task + j).

    obs, next_obs: (N, T, obs_dim) float32. action: (N, T, action_dim) float32 model actions (the Box
    values sent to the env, or one-hot vectors for Discrete spaces). reward: (N, T) float32.
    terminated, truncated, episode_start: (N, T) bool; episode_start is True at the first transition
    of every episode. task_index: (N,) int64 index into `tasks`.
    """

    obs: torch.Tensor
    action: torch.Tensor
    next_obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    episode_start: torch.Tensor
    task_index: torch.Tensor
    tasks: tuple[Task, ...]

    @property
    def num_envs(self) -> int:
        return self.obs.shape[0]

    @property
    def steps(self) -> int:
        return self.obs.shape[1]


def collect(
    family: TaskFamily,
    tasks: Sequence[Task],
    steps: int,
    policy: Policy | None = None,
    seed: int | None = None,
    envs_per_task: int = 1,
    progress: bool = False,
) -> Rollouts:
    """Run `policy` for `steps` steps on `envs_per_task` envs per task and return the transitions.

    `policy` maps observations (N, obs_dim) float32 to env actions: (N, action_dim) Box values or
    (N,) integers for Discrete spaces, as a tensor or numpy array. The default is a uniform sampler
    of the action space, seeded from `seed`. The same seed gives the same rollouts.
    """
    if not tasks:
        raise ValueError("collect needs at least one task")
    if steps < 1 or envs_per_task < 1:
        raise ValueError(f"steps and envs_per_task must be >= 1, received {steps} and {envs_per_task}")
    env_seed, action_seed = (None, None) if seed is None else np.random.SeedSequence(seed).generate_state(2)
    env_fns = [lambda task=task: family.make_env(task) for task in tasks for _ in range(envs_per_task)]
    envs = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    try:
        envs.action_space.seed(None if action_seed is None else int(action_seed))
        num_envs = envs.num_envs
        obs_shape = (num_envs, steps, family.obs_dim)
        obs_buf = np.empty(obs_shape, dtype=np.float32)
        next_obs_buf = np.empty(obs_shape, dtype=np.float32)
        action_shape = (num_envs, steps, *envs.single_action_space.shape)
        action_buf = np.empty(action_shape, dtype=envs.action_space.dtype)
        reward_buf = np.empty((num_envs, steps), dtype=np.float32)
        terminated_buf = np.empty((num_envs, steps), dtype=bool)
        truncated_buf = np.empty((num_envs, steps), dtype=bool)

        obs, _ = envs.reset(seed=None if env_seed is None else int(env_seed))
        for t in tqdm(range(steps), disable=not progress, desc="collect"):
            if policy is None:
                action = envs.action_space.sample()
            else:
                action = as_env_action(policy(torch.from_numpy(obs)), family.action_space, num_envs)
            next_obs, reward, terminated, truncated, info = envs.step(action)
            obs_buf[:, t] = obs
            next_obs_buf[:, t] = next_obs
            done = terminated | truncated
            for i in np.flatnonzero(done):
                next_obs_buf[i, t] = info["final_obs"][i]
            action_buf[:, t] = action
            reward_buf[:, t] = reward
            terminated_buf[:, t] = terminated
            truncated_buf[:, t] = truncated
            obs = next_obs
    finally:
        envs.close()

    episode_start = np.zeros((num_envs, steps), dtype=bool)
    episode_start[:, 0] = True
    episode_start[:, 1:] = terminated_buf[:, :-1] | truncated_buf[:, :-1]
    return Rollouts(
        obs=torch.from_numpy(obs_buf),
        action=to_model_action(action_buf, family.action_space),
        next_obs=torch.from_numpy(next_obs_buf),
        reward=torch.from_numpy(reward_buf),
        terminated=torch.from_numpy(terminated_buf),
        truncated=torch.from_numpy(truncated_buf),
        episode_start=torch.from_numpy(episode_start),
        task_index=torch.arange(len(tasks)).repeat_interleave(envs_per_task),
        tasks=tuple(tasks),
    )
