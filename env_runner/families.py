"""The task families: which physical parameters vary per environment, over which ranges.

OOD choice: every parameter of an "ood" task is drawn from its OOD range, which lies outside the
training range (so all parameters, not just one, are out of distribution). Navigation is the
exception: its OOD goals lie in [-1, 1]^2 outside the training square [-0.5, 0.5]^2.

Closed-form rewards exist for all five families below. Other gymnasium ids get the single-task
`TaskFamily`, which has none.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from env_runner import rewards
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.rewards import RewardFn
from env_runner.tasks import Task, TaskFamily


class PendulumFamily(TaskFamily):
    """Pendulum-v1 with gravity g, mass m and length l varied per task."""

    train_ranges = {"g": (4.0, 16.0), "m": (0.5, 2.0), "l": (0.5, 1.5)}
    ood_ranges = {"g": (16.0, 20.0), "m": (2.0, 2.5), "l": (1.5, 1.8)}
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("Pendulum-v1", **make_kwargs)

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(rewards.pendulum_reward, max_torque=float(self.reference_env.max_torque))


class CartPoleFamily(TaskFamily):
    """CartPole-v1 with pole (half-)length, pole mass, cart mass and push force varied per task.

    gymnasium derives `total_mass` and `polemass_length` once at construction; they are recomputed
    after the parameters are set.
    """

    train_ranges = {
        "length": (0.25, 1.0),
        "masspole": (0.05, 0.5),
        "masscart": (0.5, 2.0),
        "force_mag": (5.0, 15.0),
    }
    ood_ranges = {
        "length": (1.0, 1.5),
        "masspole": (0.5, 1.0),
        "masscart": (2.0, 3.0),
        "force_mag": (15.0, 20.0),
    }
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("CartPole-v1", **make_kwargs)

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        super()._apply_params(unwrapped, params)
        unwrapped.total_mass = unwrapped.masspole + unwrapped.masscart
        unwrapped.polemass_length = unwrapped.masspole * unwrapped.length

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(
            rewards.cartpole_reward,
            x_threshold=float(self.reference_env.x_threshold),
            theta_threshold=float(self.reference_env.theta_threshold_radians),
        )


class MountainCarContinuousFamily(TaskFamily):
    """MountainCarContinuous-v0 with the engine power varied per task (OOD: an underpowered car)."""

    train_ranges = {"power": (0.0010, 0.0020)}
    ood_ranges = {"power": (0.0005, 0.0010)}
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("MountainCarContinuous-v0", **make_kwargs)

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(
            rewards.mountain_car_continuous_reward,
            goal_position=float(self.reference_env.goal_position),
            goal_velocity=float(self.reference_env.goal_velocity),
        )


class AcrobotFamily(TaskFamily):
    """Acrobot-v1 (discrete actions) with both link masses and lengths varied per task.

    gymnasium's dynamics use the centre-of-mass positions `LINK_COM_POS_1/2`, not `LINK_LENGTH_2`, so
    they are set to half of each link's length (as in the defaults, 0.5 for length 1). The moment of
    inertia `LINK_MOI` keeps its default.
    """

    train_ranges = {
        "LINK_MASS_1": (0.5, 1.5),
        "LINK_MASS_2": (0.5, 1.5),
        "LINK_LENGTH_1": (0.75, 1.25),
        "LINK_LENGTH_2": (0.75, 1.25),
    }
    ood_ranges = {
        "LINK_MASS_1": (1.5, 2.0),
        "LINK_MASS_2": (1.5, 2.0),
        "LINK_LENGTH_1": (1.25, 1.5),
        "LINK_LENGTH_2": (1.25, 1.5),
    }
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("Acrobot-v1", **make_kwargs)

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        super()._apply_params(unwrapped, params)
        unwrapped.LINK_COM_POS_1 = 0.5 * unwrapped.LINK_LENGTH_1
        unwrapped.LINK_COM_POS_2 = 0.5 * unwrapped.LINK_LENGTH_2

    def reward_fn(self, task: Task) -> RewardFn:
        return rewards.acrobot_reward


class PointNavigationFamily(TaskFamily):
    """PointNavigation-v0 with the hidden goal (goal_x, goal_y) varied per task."""

    train_ranges = {"goal_x": (-0.5, 0.5), "goal_y": (-0.5, 0.5)}
    ood_ranges = {"goal_x": (-1.0, 1.0), "goal_y": (-1.0, 1.0)}
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(POINT_NAVIGATION_ID, **make_kwargs)

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict[str, float]:
        """OOD goals: uniform over [-1, 1]^2 minus the training square [-0.5, 0.5]^2 (rejection)."""
        params = super()._sample_params(rng, split)
        while split == "ood" and max(abs(params["goal_x"]), abs(params["goal_y"])) <= 0.5:
            params = super()._sample_params(rng, split)
        return params

    def reward_fn(self, task: Task) -> RewardFn:
        goal = (task.params["goal_x"], task.params["goal_y"])
        return functools.partial(rewards.navigation_reward, goal=goal)


TASK_FAMILIES: dict[str, type[TaskFamily]] = {
    "Pendulum-v1": PendulumFamily,
    "CartPole-v1": CartPoleFamily,
    "MountainCarContinuous-v0": MountainCarContinuousFamily,
    "Acrobot-v1": AcrobotFamily,
    POINT_NAVIGATION_ID: PointNavigationFamily,
}


def make_task_family(env_name: str, **make_kwargs: Any) -> TaskFamily:
    """The task family of `env_name`; any other registered gymnasium id gets a single-task family
    (with a warning that it offers no task distribution).

    `make_kwargs` go to `gymnasium.make`. An id gymnasium does not know raises ValueError naming it.
    """
    if env_name in TASK_FAMILIES:
        return TASK_FAMILIES[env_name](**make_kwargs)
    if env_name not in gym.registry:
        raise ValueError(
            f"unknown environment id {env_name!r}: it is neither a task family "
            f"({', '.join(TASK_FAMILIES)}) nor a registered gymnasium id"
        )
    warnings.warn(
        f"{env_name} has no task family, so it offers no task distribution: every task runs the "
        "environment's own physics",
        stacklevel=2,
    )
    return TaskFamily(env_name, **make_kwargs)
