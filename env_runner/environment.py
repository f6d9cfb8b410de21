"""`Environment`: one gymnasium environment (or a batch of them) of a task family, with checked actions.

    task = make_task_family("Pendulum-v1").sample(1, seed=0)[0]
    env = Environment("Pendulum-v1", batch_size=4, seed=0, task=task)
    obs, info = env.reset()                        # obs (4, obs_dim)
    obs, reward, terminated, truncated, info = env.step(env.sample_action())

`batch_size == 1` wraps a single env (unbatched arrays); `batch_size > 1` a gymnasium `SyncVectorEnv`
(arrays with a leading batch dimension) that autoresets in the same step: an env that ends an
episode returns its reset observation and puts the final one in `info["final_obs"]`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from env_runner.actions import as_env_action, is_discrete
from env_runner.families import make_task_family
from env_runner.rewards import RewardFn
from env_runner.tasks import Task, TaskFamily

__all__ = ["Environment", "make_task_family"]


class Environment:
    """A gymnasium env of `env_name` running `task` (the env's own physics when None).

    `observation_space` and `action_space` are the single-env spaces; obs_dim is the observation
    width, action_dim the Box dimension or the number of discrete actions (models take one-hot
    actions). `seed` seeds the first reset and `sample_action`. `extra` goes to `gymnasium.make`.
    """

    def __init__(
        self,
        env_name: str = "Pendulum-v1",
        batch_size: int = 1,
        seed: int | None = None,
        task: Task | None = None,
        **extra: Any,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, received {batch_size}")
        self.family: TaskFamily = make_task_family(env_name, **extra)
        self.task = task if task is not None else self.family.default_task()
        self.batch_size = batch_size
        self.observation_space = self.family.observation_space
        self.action_space = self.family.action_space
        if batch_size == 1:
            self.env: gym.Env | gym.vector.VectorEnv = self.family.make_env(self.task)
        else:
            self.env = gym.vector.SyncVectorEnv(
                [lambda: self.family.make_env(self.task)] * batch_size,
                autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
            )
        self._first_reset_seed = seed
        self.env.action_space.seed(seed)

    @property
    def obs_dim(self) -> int:
        return self.family.obs_dim

    @property
    def action_dim(self) -> int:
        return self.family.action_dim

    @property
    def is_discrete(self) -> bool:
        return is_discrete(self.action_space)

    @property
    def reward_fn(self) -> RewardFn:
        """The task's closed-form reward (obs, model action, next_obs) -> reward, see `TaskFamily`."""
        return self.family.reward_fn(self.task)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """(obs, info); obs (obs_dim,) or (batch_size, obs_dim). Batched envs get seeds seed + i."""
        if seed is None:
            seed = self._first_reset_seed
        self._first_reset_seed = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray | torch.Tensor | float | int) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        """Env action of shape () / (action_dim,), or (B,) / (B, action_dim) when batched.

        Returns (obs, reward, terminated, truncated, info), batched when batch_size > 1.
        """
        batch = None if self.batch_size == 1 else self.batch_size
        env_action = as_env_action(action, self.action_space, batch)
        if batch is None and self.is_discrete:
            return self.env.step(int(env_action))
        return self.env.step(env_action)

    def sample_action(self) -> np.ndarray:
        """A uniformly random env action (batched when batch_size > 1)."""
        return self.env.action_space.sample()

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Environment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
