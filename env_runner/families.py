"""The task families: what the dynamics of each environment depend on, and the ranges of those coefficients.

Every family samples in coefficient space (see `env_runner.tasks`): the training box `coefficient_ranges`
holds the train, val and test tasks; OOD tasks come from the wider `ood_ranges` and lie outside the training
box by at least 10% of its width in some coefficient. Parameters that do not change the dynamics (a
pendulum's length once both of its coefficients are fixed, a cart-pole's total mass) are drawn freely.

Closed-form rewards exist for all five families below, and termination functions where episodes can
terminate. Other gymnasium ids get the single-task `TaskFamily`, which has neither.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from env_runner import rewards
from env_runner.locomotion import (
    ANT_CRIPPLED_ID,
    ANT_DIR_ID,
    ANT_MASS_ID,
    HALF_CHEETAH_CRIPPLED_ID,
    HALF_CHEETAH_DIR_ID,
    HALF_CHEETAH_VEL_ID,
    AntCrippledFamily,
    AntMassFamily,
    HalfCheetahCrippledFamily,
    HalfCheetahFamily,
    HopperFamily,
)
from env_runner.locomotion_goals import AntDirFamily, HalfCheetahDirFamily, HalfCheetahVelFamily
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.popgym_families import POPGYM_IDS, PopgymFamily
from env_runner.protocols import COEFFICIENTS
from env_runner.rewards import RewardFn
from env_runner.tasks import Task, TaskFamily, TerminationFn


class PendulumFamily(TaskFamily):
    """Pendulum-v1: thdot' = thdot + (3g/(2l) sin th + 3/(m l^2) u) dt depends on two coefficients only,
    `gravity_term` = 3g/(2l) and `control_gain` = 3/(m l^2). The length l is drawn in [0.5, 1.5] and g, m
    follow from the coefficients. Default physics (g 10, m 1, l 1): gravity_term 15, control_gain 3."""

    param_names = ("g", "m", "l")
    coefficient_ranges = {"gravity_term": (5.0, 30.0), "control_gain": (1.0, 10.0)}
    ood_ranges = {"gravity_term": (3.5, 45.0), "control_gain": (0.8, 16.0)}
    log_coefficients = frozenset(coefficient_ranges)
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("Pendulum-v1", **make_kwargs)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        length = float(rng.uniform(0.5, 1.5))
        return {
            "g": 2.0 * length * coefficients["gravity_term"] / 3.0,
            "m": 3.0 / (coefficients["control_gain"] * length**2),
            "l": length,
        }

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {
            "gravity_term": 3.0 * params["g"] / (2.0 * params["l"]),
            "control_gain": 3.0 / (params["m"] * params["l"] ** 2),
        }

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(rewards.pendulum_reward, max_torque=float(self.reference_env.max_torque))


class CartPoleFamily(TaskFamily):
    """CartPole-v1: the equations of motion depend on `force_per_mass` F/(m_c + m_p), `pole_mass_fraction`
    m_p/(m_c + m_p) and the pole's half-length l. The total mass is drawn in [0.6, 2.5]. Default physics:
    9.09, 0.091, 0.5.

    gymnasium derives `total_mass` and `polemass_length` once at construction; they are recomputed
    after the parameters are set.
    """

    param_names = ("length", "masspole", "masscart", "force_mag")
    coefficient_ranges = {"force_per_mass": (4.0, 12.0), "pole_mass_fraction": (0.05, 0.3), "half_length": (0.25, 1.0)}
    ood_ranges = {"force_per_mass": (2.5, 18.0), "pole_mass_fraction": (0.03, 0.5), "half_length": (0.15, 1.6)}
    log_coefficients = frozenset(coefficient_ranges)
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("CartPole-v1", **make_kwargs)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        total_mass = float(rng.uniform(0.6, 2.5))
        fraction = coefficients["pole_mass_fraction"]
        return {
            "length": coefficients["half_length"],
            "masspole": fraction * total_mass,
            "masscart": (1.0 - fraction) * total_mass,
            "force_mag": coefficients["force_per_mass"] * total_mass,
        }

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        total_mass = params["masspole"] + params["masscart"]
        return {
            "force_per_mass": params["force_mag"] / total_mass,
            "pole_mass_fraction": params["masspole"] / total_mass,
            "half_length": params["length"],
        }

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        super()._apply_params(unwrapped, params)
        unwrapped.total_mass = unwrapped.masspole + unwrapped.masscart
        unwrapped.polemass_length = unwrapped.masspole * unwrapped.length

    def _limits(self) -> dict[str, float]:
        return {
            "x_threshold": float(self.reference_env.x_threshold),
            "theta_threshold": float(self.reference_env.theta_threshold_radians),
        }

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(rewards.cartpole_reward, **self._limits())

    def termination_fn(self, task: Task) -> TerminationFn:
        return functools.partial(rewards.cartpole_terminated, **self._limits())


ENERGY_SHAPING_SCALE = 3000.0  # return units per unit of energy: the energy range (~0.004) is then worth ~12


class MountainCarContinuousFamily(TaskFamily):
    """MountainCarContinuous-v0: the engine `power` is the one coefficient (default 0.0015)."""

    param_names = ("power",)
    coefficient_ranges = {"power": (0.0010, 0.0020)}
    ood_ranges = {"power": (0.0008, 0.0028)}
    log_coefficients = frozenset(coefficient_ranges)
    has_reward_fn = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("MountainCarContinuous-v0", **make_kwargs)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        return {"power": coefficients["power"]}

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {"power": params["power"]}

    def _goal(self) -> dict[str, float]:
        return {
            "goal_position": float(self.reference_env.goal_position),
            "goal_velocity": float(self.reference_env.goal_velocity),
        }

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(rewards.mountain_car_continuous_reward, **self._goal())

    def termination_fn(self, task: Task) -> TerminationFn:
        return functools.partial(rewards.mountain_car_reached_goal, **self._goal())

    def planning_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        """The reward plus 3000 x the change in mechanical energy (potential-based shaping): the +100 of the
        goal lies ~100 steps of swinging away, beyond any affordable horizon, and energy is what gets the car
        there. With it, CEM on the true dynamics (horizon 15) reaches the goal."""
        return functools.partial(
            rewards.potential_shaped,
            reward_fn=self.batch_reward_fn(tasks),
            potential=rewards.mountain_car_energy,
            scale=ENERGY_SHAPING_SCALE,
        )


class AcrobotFamily(TaskFamily):
    """Acrobot-v1 (discrete actions): the equations depend on both link masses and lengths (the centres of
    mass sit at half of each length; the moments of inertia keep their default 1), the four coefficients.

    gymnasium's dynamics use the centre-of-mass positions `LINK_COM_POS_1/2`, not `LINK_LENGTH_2`, so
    they are set to half of each link's length (as in the defaults, 0.5 for length 1).
    """

    param_names = ("LINK_MASS_1", "LINK_MASS_2", "LINK_LENGTH_1", "LINK_LENGTH_2")
    coefficient_ranges = {
        "mass_1": (0.5, 1.5),
        "mass_2": (0.5, 1.5),
        "length_1": (0.75, 1.25),
        "length_2": (0.75, 1.25),
    }
    ood_ranges = {"mass_1": (0.3, 2.2), "mass_2": (0.3, 2.2), "length_1": (0.6, 1.5), "length_2": (0.6, 1.5)}
    log_coefficients = frozenset(coefficient_ranges)
    has_reward_fn = True
    _names = dict(zip(coefficient_ranges, param_names, strict=True))

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("Acrobot-v1", **make_kwargs)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        return {self._names[name]: value for name, value in coefficients.items()}

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {name: params[param] for name, param in self._names.items()}

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        super()._apply_params(unwrapped, params)
        unwrapped.LINK_COM_POS_1 = 0.5 * unwrapped.LINK_LENGTH_1
        unwrapped.LINK_COM_POS_2 = 0.5 * unwrapped.LINK_LENGTH_2

    def reward_fn(self, task: Task) -> RewardFn:
        return rewards.acrobot_reward

    def termination_fn(self, task: Task) -> TerminationFn:
        return rewards.acrobot_terminated


class PointNavigationFamily(TaskFamily):
    """PointNavigation-v0: the hidden goal, as `goal_distance` from the start and `goal_angle`. Training goals
    lie 0.1 to 0.5 from the origin in every direction; OOD goals 0.6 to 1.0 away."""

    param_names = ("goal_x", "goal_y")
    coefficient_ranges = {"goal_distance": (0.1, 0.5), "goal_angle": (-math.pi, math.pi)}
    ood_ranges = {"goal_distance": (0.6, 1.0), "goal_angle": (-math.pi, math.pi)}
    has_reward_fn = True
    reward_depends_on_task = True

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(POINT_NAVIGATION_ID, **make_kwargs)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        distance, angle = coefficients["goal_distance"], coefficients["goal_angle"]
        return {"goal_x": distance * math.cos(angle), "goal_y": distance * math.sin(angle)}

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {
            "goal_distance": math.hypot(params["goal_x"], params["goal_y"]),
            "goal_angle": math.atan2(params["goal_y"], params["goal_x"]),
        }

    def reward_fn(self, task: Task) -> RewardFn:
        return self.batch_reward_fn([task])

    def batch_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        """Each episode's goal broadcast over its candidates: goal (E, 1, 2) against positions (E, C, 2)."""
        goals = torch.tensor([[task.params["goal_x"], task.params["goal_y"]] for task in tasks])
        return functools.partial(rewards.navigation_reward, goal=goals[:, None] if len(tasks) > 1 else goals[0])


TASK_FAMILIES: dict[str, type[TaskFamily]] = {
    "Pendulum-v1": PendulumFamily,
    "CartPole-v1": CartPoleFamily,
    "MountainCarContinuous-v0": MountainCarContinuousFamily,
    "Acrobot-v1": AcrobotFamily,
    POINT_NAVIGATION_ID: PointNavigationFamily,
    "HalfCheetah-v5": HalfCheetahFamily,
    "Hopper-v5": HopperFamily,
    HALF_CHEETAH_CRIPPLED_ID: HalfCheetahCrippledFamily,
    ANT_CRIPPLED_ID: AntCrippledFamily,
    ANT_MASS_ID: AntMassFamily,
    HALF_CHEETAH_VEL_ID: HalfCheetahVelFamily,
    HALF_CHEETAH_DIR_ID: HalfCheetahDirFamily,
    ANT_DIR_ID: AntDirFamily,
}


def make_task_family(env_name: str, protocol: str = COEFFICIENTS, **make_kwargs: Any) -> TaskFamily:
    """The task family of `env_name` under `protocol` (`env_runner.protocols`; default our coefficient-space
    splits); any other registered gymnasium id gets a single-task family (with a warning that it offers no task
    distribution).

    `make_kwargs` go to `gymnasium.make`. An id gymnasium does not know, or a protocol without a table for it,
    raises ValueError naming it.
    """
    if env_name in TASK_FAMILIES:
        return TASK_FAMILIES[env_name](protocol=protocol, **make_kwargs)
    if env_name in POPGYM_IDS:
        return PopgymFamily(env_name, protocol=protocol, **make_kwargs)
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
    return TaskFamily(env_name, protocol=protocol, **make_kwargs)
