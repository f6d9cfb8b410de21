"""Tasks and task families: distributions over the physics of one gymnasium environment.

A `Task` is one set of physical parameters. A `TaskFamily` samples tasks reproducibly and builds
gymnasium environments with a task's parameters applied (set on `env.unwrapped`).

Splits: "train" and "test" draw from the same parameter ranges with disjoint random streams (the
numpy generator comes from `SeedSequence([seed, split_id])`), "ood" draws every parameter from
ranges outside the training ranges. Concrete families live in `env_runner.families`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from env_runner.actions import action_dim, check_action_space
from env_runner.rewards import RewardFn

Split = Literal["train", "test", "ood"]
SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1, "ood": 2}
Range = tuple[float, float]


@dataclass(frozen=True)
class Task:
    """One task of a family: `params` maps physical attribute names to values.

    `split` is "train", "test", "ood" or "default" (the environment's own parameters) and `index`
    the position in the sample that produced it. Hashing ignores `params` (a dict); equality does not.
    """

    env_id: str
    split: str
    index: int
    params: dict[str, float] = field(hash=False)


class TaskInfo(gym.Wrapper):
    """Adds `info["task_params"]` (the task's parameter dict) to the info of every reset.

    Only resets carry it: adding it to every step costs a fifth of the collection time of a
    vector env (which batches info dicts key by key), and the task cannot change within an episode.
    The task itself is `env.get_wrapper_attr("task")`. A seed given at construction seeds the first
    reset (and the action space) unless that reset passes its own seed.
    """

    def __init__(self, env: gym.Env, task: Task, seed: int | None = None) -> None:
        super().__init__(env)
        self.task = task
        self._first_reset_seed = seed
        if seed is not None:
            self.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._first_reset_seed
        self._first_reset_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        info["task_params"] = dict(self.task.params)
        return obs, info


class TaskFamily:
    """Distribution of tasks over one gymnasium environment id.

    Subclasses set `train_ranges` and `ood_ranges` ({param: (low, high)}, the attribute names of the
    unwrapped environment), and override `reward_fn` (setting `has_reward_fn`) where the reward has
    a closed form, and `_apply_params` where the environment caches quantities derived from them.
    The base class itself is the single-task family used for any other gymnasium id: its tasks have
    empty params (the environment's own physics) and distinct indices, and it has no "ood" split.

    `make_kwargs` go to `gymnasium.make` (e.g. `max_episode_steps`).
    """

    train_ranges: ClassVar[Mapping[str, Range]] = {}
    ood_ranges: ClassVar[Mapping[str, Range]] = {}
    has_reward_fn: ClassVar[bool] = False

    def __init__(self, env_id: str, **make_kwargs: Any) -> None:
        self.env_id = env_id
        self.make_kwargs = make_kwargs
        reference = gym.make(env_id, **make_kwargs)
        self.observation_space: spaces.Box = reference.observation_space
        self.action_space: spaces.Space = reference.action_space
        self.reference_env: gym.Env = reference.unwrapped
        reference.close()
        if not (isinstance(self.observation_space, spaces.Box) and len(self.observation_space.shape) == 1):
            raise ValueError(
                f"{env_id} has observation space {self.observation_space}: "
                "only 1-D Box observations are supported"
            )
        check_action_space(self.action_space)

    @property
    def has_task_distribution(self) -> bool:
        """Whether tasks differ from each other (False for the single-task family)."""
        return bool(self.train_ranges)

    @property
    def obs_dim(self) -> int:
        return int(self.observation_space.shape[0])

    @property
    def action_dim(self) -> int:
        """Box dimension, or number of actions for a Discrete space (models take one-hot actions)."""
        return action_dim(self.action_space)

    def sample(self, n: int, seed: int, split: Split = "train") -> list[Task]:
        """`n` tasks of `split`, the same for the same (seed, split), never shared between splits."""
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_IDS)}")
        if split == "ood" and not self.has_task_distribution:
            raise ValueError(f"{self.env_id} has no task distribution, hence no out-of-distribution split")
        if n < 0:
            raise ValueError(f"the number of tasks must be >= 0, received {n}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split]]))
        return [Task(self.env_id, split, index, self._sample_params(rng, split)) for index in range(n)]

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict[str, float]:
        ranges = self.ood_ranges if split == "ood" else self.train_ranges
        return {name: float(rng.uniform(low, high)) for name, (low, high) in ranges.items()}

    def default_task(self) -> Task:
        """The environment's own parameters as a task (split "default")."""
        params = {name: float(getattr(self.reference_env, name)) for name in self.train_ranges}
        return Task(self.env_id, "default", 0, params)

    def make_env(self, task: Task, seed: int | None = None) -> gym.Env:
        """A gymnasium env with `task.params` set on `env.unwrapped`, wrapped in `TaskInfo`."""
        if task.env_id != self.env_id:
            raise ValueError(f"task of {task.env_id} given to the {self.env_id} family")
        env = gym.make(self.env_id, **self.make_kwargs)
        unwrapped = env.unwrapped
        for name in task.params:
            if not hasattr(unwrapped, name):
                raise AttributeError(f"{self.env_id} has no attribute {name!r} to set from the task")
        self._apply_params(unwrapped, task.params)
        return TaskInfo(env, task, seed=seed)

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        for name, value in params.items():
            setattr(unwrapped, name, value)

    def reward_fn(self, task: Task) -> RewardFn:
        """The task's reward as a torch function (obs, model action, next_obs) -> reward (...,)."""
        raise NotImplementedError(f"{self.env_id} has no closed-form reward function (has_reward_fn False)")
