"""Locomotion families whose tasks differ in what to do, not in the physics: the meta-RL benchmarks of MAML (Finn et
al. 2017), ProMP (Rothfuss et al. 2019), PEARL and VariBAD, on gymnasium's v5 MuJoCo models.

- `HalfCheetahVel-v0`: run at a target velocity, r = -|v - v_goal| - 0.05 |a|^2. Training goals U[0, 2] as in MAML
  (PEARL and VariBAD draw U[0, 3]); OOD goals above 2 by at least 10% of that range (2.2 to 3).
- `AntDir-v0`: walk in a planar direction, r = velocity along it + 1[healthy] - 0.5 |a|^2, terminated when
  unhealthy (ProMP's AntRandDirec2DEnv on Ant-v5, without contact forces or contact cost). Training directions on the
  arc [0, 270) degrees; OOD directions on the held-out arc, at least 27 degrees (10% of the training arc) from it.
- `HalfCheetahDir-v0`: run forward or backward, r = d v - 0.05 |a|^2, d = +1 or -1. Two tasks only: every split
  draws them, so its test tasks are its training tasks, and it has no OOD split.

Episodes last 200 steps. Every task has the same dynamics: only the reward depends on the task
(`reward_depends_on_task`), so a world model learns it (`--reward learned`) and the planner is not told the goal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from env_runner import locomotion_rewards
from env_runner.locomotion import (
    ANT_DIR_ID,
    HALF_CHEETAH_DIR_ID,
    HALF_CHEETAH_VEL_ID,
    AntRewards,
    MujocoFamily,
)
from env_runner.rewards import RewardFn
from env_runner.tasks import Split, Task


def per_episode(tasks: Sequence[Task], name: str) -> torch.Tensor:
    """Each task's `name` parameter, shaped to broadcast against transitions of E episodes: (E, 1), or () for one."""
    values = torch.tensor([task.params[name] for task in tasks])
    return values[:, None] if len(tasks) > 1 else values[0]


class GoalFamily(MujocoFamily):
    """A family whose one parameter is the goal (params = coefficients) and whose reward reads it."""

    reward_depends_on_task = True
    goal_name: str

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        return dict(coefficients)

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {self.goal_name: params[self.goal_name]}

    def reward_fn(self, task: Task) -> RewardFn:
        return self.batch_reward_fn([task])

    def _cheetah_constants(self) -> dict[str, float]:
        env = self.reference_env
        return {"dt": float(env.dt), "ctrl_cost_weight": float(env._ctrl_cost_weight)}


class HalfCheetahVelFamily(GoalFamily):
    """HalfCheetahVel-v0 (`HalfCheetahVelEnv`): the goal velocity, U[0, 2] for training, (2.2, 3] OOD."""

    param_names = ("goal_velocity",)
    goal_name = "goal_velocity"
    coefficient_ranges = {"goal_velocity": (0.0, 2.0)}
    ood_ranges = {"goal_velocity": (2.0, 3.0)}

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(HALF_CHEETAH_VEL_ID, **make_kwargs)

    def batch_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        return functools.partial(
            locomotion_rewards.velocity_tracking_reward,
            goal_velocity=per_episode(tasks, self.goal_name),
            **self._cheetah_constants(),
        )


class HalfCheetahDirFamily(GoalFamily):
    """HalfCheetahDir-v0 (`HalfCheetahDirEnv`): two tasks, goal_direction +1 or -1, hence no held-out ones.

    Task i of every split runs forward for even i and backward for odd i (categorical, so the oracle sees it one-hot):
    the splits share their tasks (`held_out_tasks` False) and there is no OOD split.
    """

    param_names = ("goal_direction",)
    goal_name = "goal_direction"
    categorical_coefficients = {"goal_direction": (-1, 1)}
    held_out_tasks = False

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(HALF_CHEETAH_DIR_ID, **make_kwargs)

    @property
    def has_task_distribution(self) -> bool:
        return True

    @property
    def has_ood_split(self) -> bool:
        return False

    def sample(self, n: int, seed: int, split: Split = "train") -> list[Task]:
        """The two directions in turn, +1 first, for every seed and split but "ood" (refused)."""
        self._check_sample(n, split)
        return [Task(self.env_id, split, i, {"goal_direction": 1.0 if i % 2 == 0 else -1.0}) for i in range(n)]

    def batch_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        return functools.partial(
            locomotion_rewards.direction_reward,
            goal_direction=per_episode(tasks, self.goal_name),
            **self._cheetah_constants(),
        )


TRAINING_ARC = (0.0, 1.5 * math.pi)  # AntDir's training directions, radians


class AntDirFamily(GoalFamily, AntRewards):
    """AntDir-v0 (`AntDirEnv`): the goal direction's angle; training arc [0, 3 pi / 2), OOD proposals from the rest of
    the circle, kept at least 10% of the training arc's width away from it on the circle (`_margin`)."""

    param_names = ("goal_angle",)
    goal_name = "goal_angle"
    coefficient_ranges = {"goal_angle": TRAINING_ARC}
    ood_ranges = {"goal_angle": (TRAINING_ARC[1], 2 * math.pi)}

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(ANT_DIR_ID, **make_kwargs)

    def _margin(self, coefficients: Mapping[str, float]) -> float:
        """The distance on the circle from the angle to the training arc, in units of the arc's width (<= 0 on it)."""
        low, high = TRAINING_ARC
        angle = coefficients["goal_angle"] % (2 * math.pi)
        if low <= angle <= high:
            return -min(angle - low, high - angle) / (high - low)
        return min(angle - high, 2 * math.pi - angle + low) / (high - low)

    def batch_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        env = self.reference_env
        return functools.partial(
            locomotion_rewards.planar_direction_reward,
            goal_angle=per_episode(tasks, self.goal_name),
            dt=float(env.dt),
            ctrl_cost_weight=float(env._ctrl_cost_weight),
            healthy_reward=float(env._healthy_reward),
            **self._z_range(),
        )
