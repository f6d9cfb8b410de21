"""MuJoCo locomotion task families: the CaDM (Lee et al. 2020) and GrBAL (Nagabandi et al. 2019) benchmarks.

- `HalfCheetah-v5`, `Hopper-v5` (CaDM): every body's mass and every joint's damping scaled per task,
  m_b = mass_scale m_b^0 and d_j = damping_scale d_j^0 relative to the values the model was loaded with.
  Coefficients (mass_scale, damping_scale), log-uniform in the training box [0.5, 2]^2; OOD tasks come
  from [0.25, 4]^2 and lie outside the training box by >= 10% of its log-width (a scale below ~0.44 or
  above ~2.3) in at least one of them, on either side.
- `HalfCheetahCrippled-v0` (GrBAL): one motor delivers only `crippled_scale` in [0, 0.5] of its torque
  (0 disables it). Train, val and test tasks cripple one of the training motors (0 bthigh, 1 bshin,
  3 fthigh, 4 fshin); OOD tasks cripple a motor never crippled in training (2 bfoot or 5 ffoot).
- `AntCrippled-v0` (GrBAL): the same for one of the Ant's four legs (hip and ankle motors); training
  legs 0, 1, 2, OOD leg 3. Made without contact forces in the observation and without contact cost.
- `AntMass-v0` (CaDM's Ant): Ant-v5 (made as `AntCrippled-v0`, nothing crippled) with CaDM's mass and damping
  change and reward weights (`AntMassFamily`), in the boxes of `HalfCheetah-v5`.

Every environment is made with `exclude_current_positions_from_observation=False`, so the root's x
position is obs[0] and the reward is a function of (obs, action, next_obs) (`env_runner.locomotion_rewards`):
HalfCheetah r = (x' - x)/dt - 0.1 |a|^2; Hopper r = (x' - x)/dt + 1[healthy(s')] - 1e-3 |a|^2 and Ant
r = (x' - x)/dt + 1[healthy(s')] - 0.5 |a|^2, terminated when s' is unhealthy. The dynamics do not depend
on the horizontal position: `translation_invariant_obs` = (0,) (x), and (0, 1) (x, y) for the Ant.

The families need MuJoCo; without it, making one raises `gymnasium.error.DependencyNotInstalled` naming
the fix. This module itself imports without MuJoCo.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from env_runner import locomotion_rewards
from env_runner.rewards import RewardFn
from env_runner.tasks import Task, TaskFamily, TerminationFn

HALF_CHEETAH_CRIPPLED_ID = "HalfCheetahCrippled-v0"
ANT_CRIPPLED_ID = "AntCrippled-v0"
ANT_MASS_ID = "AntMass-v0"
HALF_CHEETAH_VEL_ID = "HalfCheetahVel-v0"
HALF_CHEETAH_DIR_ID = "HalfCheetahDir-v0"
ANT_DIR_ID = "AntDir-v0"
MAX_EPISODE_STEPS = 1000  # as HalfCheetah-v5 and Ant-v5
GOAL_EPISODE_STEPS = 200  # the goal benchmarks' episodes (Finn et al. 2017)
MUJOCO_INSTALL_HINT = 'install MuJoCo with `pip install "gymnasium[mujoco]"` (or `pip install -e .` in this project)'


def register_locomotion_envs() -> None:
    """Register the environments of `env_runner.locomotion_envs` with gymnasium (MuJoCo is imported only when one is
    made): the crippled and mass-changed ones with 1000-step episodes, the goal ones with 200; calling it again changes
    nothing."""
    entry_points = {
        HALF_CHEETAH_CRIPPLED_ID: ("HalfCheetahCrippledEnv", MAX_EPISODE_STEPS),
        ANT_CRIPPLED_ID: ("AntCrippledEnv", MAX_EPISODE_STEPS),
        ANT_MASS_ID: ("AntCurrentKinematicsEnv", MAX_EPISODE_STEPS),
        HALF_CHEETAH_VEL_ID: ("HalfCheetahVelEnv", GOAL_EPISODE_STEPS),
        HALF_CHEETAH_DIR_ID: ("HalfCheetahDirEnv", GOAL_EPISODE_STEPS),
        ANT_DIR_ID: ("AntDirEnv", GOAL_EPISODE_STEPS),
    }
    for env_id, (name, steps) in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"env_runner.locomotion_envs:{name}", max_episode_steps=steps)


class MujocoFamily(TaskFamily):
    """A family over a gymnasium MuJoCo environment, made with `required_make_kwargs` (the root's x position
    in the observation, so that the reward is a function of the observations).

    Raises `gymnasium.error.DependencyNotInstalled` naming the fix when MuJoCo (or the rest of gymnasium's
    mujoco extra) is missing, and ValueError when `make_kwargs` contradict `required_make_kwargs`.
    """

    has_reward_fn = True
    translation_invariant_obs = (0,)
    required_make_kwargs: ClassVar[Mapping[str, Any]] = {"exclude_current_positions_from_observation": False}

    def __init__(self, env_id: str, **make_kwargs: Any) -> None:
        for name, value in self.required_make_kwargs.items():
            if make_kwargs.setdefault(name, value) != value:
                raise ValueError(f"the {env_id} family needs {name}={value} (its reward reads the observation)")
        try:
            super().__init__(env_id, **make_kwargs)
        except (ImportError, gym.error.DependencyNotInstalled) as error:
            message = f"the {env_id} task family needs MuJoCo: {MUJOCO_INSTALL_HINT}"
            raise gym.error.DependencyNotInstalled(message) from error

    def _reward_constants(self) -> dict[str, float]:
        """dt and the reward weights of the environment as made (`make_kwargs` may change the weights)."""
        env = self.reference_env
        return {
            "dt": float(env.dt),
            "forward_reward_weight": float(env._forward_reward_weight),
            "ctrl_cost_weight": float(env._ctrl_cost_weight),
        }


class MassDampingFamily(MujocoFamily):
    """Tasks scale every body's mass and every joint's damping (CaDM): params = coefficients =
    (mass_scale, damping_scale), log-uniform in [0.5, 2]^2; OOD proposals from [0.25, 4]^2.

    The scales are not attributes of gymnasium's environment: `_apply_params` writes
    body_mass = mass_scale * body_mass^0 and dof_damping = damping_scale * dof_damping^0 into the MuJoCo
    model (the load-time values are kept by the family, so applying a task never compounds) and recomputes
    the model's derived constants with `mujoco.mj_setConst`, as MuJoCo requires after changing masses.
    Only masses scale: rotational inertias keep their load-time values. The default task is (1, 1).
    """

    param_names = ("mass_scale", "damping_scale")
    coefficient_ranges = {"mass_scale": (0.5, 2.0), "damping_scale": (0.5, 2.0)}
    ood_ranges = {"mass_scale": (0.25, 4.0), "damping_scale": (0.25, 4.0)}
    log_coefficients = frozenset(coefficient_ranges)

    def __init__(self, env_id: str, **make_kwargs: Any) -> None:
        super().__init__(env_id, **make_kwargs)
        self.load_time_body_mass = self.reference_env.model.body_mass.copy()
        self.load_time_dof_damping = self.reference_env.model.dof_damping.copy()

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        return dict(coefficients)

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {name: params[name] for name in self.param_names}

    def default_task(self) -> Task:
        """The model as loaded: both scales 1."""
        return Task(self.env_id, "default", 0, {name: 1.0 for name in self.param_names})

    def make_env(self, task: Task, seed: int | None = None) -> gym.Env:
        """A gymnasium env whose MuJoCo model has the task's scales applied, wrapped in `TaskInfo`."""
        self._check_task(task)
        env = gym.make(self.env_id, **self.make_kwargs)
        self._apply_params(env.unwrapped, task.params)
        return self._wrap(env, task, seed)

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        import mujoco  # the family exists only where MuJoCo does (see MujocoFamily)

        model = unwrapped.model
        model.body_mass[:] = self.load_time_body_mass * self._factors(params["mass_scale"], model.nbody)
        model.dof_damping[:] = self.load_time_dof_damping * self._factors(params["damping_scale"], model.nv)
        mujoco.mj_setConst(model, unwrapped.data)

    def _factors(self, scale: float, count: int) -> np.ndarray:
        """(count,) what each body's mass (each dof's damping) is multiplied by under `scale`: all of them by it."""
        return np.full(count, scale)


class HalfCheetahFamily(MassDampingFamily):
    """HalfCheetah-v5 with scaled masses and damping; r = (x' - x)/dt - 0.1 |a|^2, dt = 0.05, never terminates."""

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("HalfCheetah-v5", **make_kwargs)

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(locomotion_rewards.running_reward, **self._reward_constants())


class HopperFamily(MassDampingFamily):
    """Hopper-v5 with scaled masses and damping (see `locomotion_rewards.hopper_reward` and `hopper_healthy`):

    r = (x' - x)/dt + 1[healthy(s')] - 1e-3 |a|^2 with dt = 0.008, terminated when s' is unhealthy
    (0.7 < z', -0.2 < pitch' < 0.2, |obs'[2:]| < 100). The constants are read from the environment as made.
    """

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__("Hopper-v5", **make_kwargs)

    def _healthy_ranges(self) -> dict[str, tuple[float, float]]:
        env = self.reference_env
        return {
            "z_range": env._healthy_z_range,
            "angle_range": env._healthy_angle_range,
            "state_range": env._healthy_state_range,
        }

    def reward_fn(self, task: Task) -> RewardFn:
        healthy_reward = float(self.reference_env._healthy_reward)
        return functools.partial(
            locomotion_rewards.hopper_reward,
            healthy_reward=healthy_reward,
            **self._reward_constants(),
            **self._healthy_ranges(),
        )

    def termination_fn(self, task: Task) -> TerminationFn | None:
        if not self.reference_env._terminate_when_unhealthy:
            return None
        return functools.partial(locomotion_rewards.hopper_terminated, **self._healthy_ranges())


class CrippledFamily(MujocoFamily):
    """Tasks cripple one part (a motor, a leg) of a locomotion env (GrBAL): params = coefficients =
    (`part_name`, crippled_scale), the part an index stored as a float.

    `crippled_scale` is uniform in [0, 0.5] for every split. The part is categorical, so the coefficient
    box does not describe it: train, val and test tasks draw it uniformly from `training_parts`, OOD
    tasks from the parts never crippled in training, `ood_parts`. Accordingly `ood_margin` is +inf for a
    part outside `training_parts` (a task no training task resembles) and the scale's margin otherwise
    (<= 0 inside [0, 0.5]; the default task, nothing crippled at scale 1, has margin 1).
    """

    part_name: ClassVar[str]
    training_parts: ClassVar[tuple[int, ...]]
    ood_parts: ClassVar[tuple[int, ...]]
    coefficient_ranges = {"crippled_scale": (0.0, 0.5)}
    ood_ranges = {"crippled_scale": (0.0, 0.5)}

    @property
    def categorical_coefficients(self) -> dict[str, tuple[int, ...]]:
        """The crippled part, which takes every training and OOD part."""
        return {self.part_name: tuple(sorted(self.training_parts + self.ood_parts))}

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict[str, float]:
        if split == "ood":
            parts, ranges = self.ood_parts, self.ood_ranges
        else:
            parts, ranges = self.training_parts, self.coefficient_ranges
        coefficients = {self.part_name: float(rng.choice(parts)), **self._draw(rng, ranges)}
        return self._params_from_coefficients(coefficients, rng)

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        return dict(coefficients)

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        return {name: params[name] for name in self.param_names}

    def _margin(self, coefficients: Mapping[str, float]) -> float:
        if int(coefficients[self.part_name]) not in self.training_parts:
            return math.inf
        return super()._margin(coefficients)


class HalfCheetahCrippledFamily(CrippledFamily):
    """HalfCheetahCrippled-v0: one motor weakened (`HalfCheetahCrippledEnv`); training motors 0 bthigh,
    1 bshin, 3 fthigh, 4 fshin, OOD motors 2 bfoot, 5 ffoot. r = (x' - x)/dt - 0.1 |a|^2 on the commanded
    action, the same for every task; never terminates."""

    param_names = ("crippled_joint", "crippled_scale")
    part_name = "crippled_joint"
    training_parts = (0, 1, 3, 4)
    ood_parts = (2, 5)

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(HALF_CHEETAH_CRIPPLED_ID, **make_kwargs)

    def reward_fn(self, task: Task) -> RewardFn:
        return functools.partial(locomotion_rewards.running_reward, **self._reward_constants())


class AntRewards(MujocoFamily):
    """The Ant families' made environment, reward and termination: no contact forces in the observation and
    `contact_cost_weight=0` (the contact cost reads forces the observation lacks): r = (x' - x)/dt + 1[healthy(s')]
    - 0.5 |a|^2, terminated when s' is unhealthy (0.2 <= z' <= 1 and a finite state; see
    `locomotion_rewards.ant_reward`). The dynamics do not depend on the position (x, y)."""

    translation_invariant_obs = (0, 1)
    required_make_kwargs = {
        **MujocoFamily.required_make_kwargs,
        "include_cfrc_ext_in_observation": False,
        "contact_cost_weight": 0.0,
    }

    def _z_range(self) -> dict[str, tuple[float, float]]:
        return {"z_range": self.reference_env._healthy_z_range}

    def reward_fn(self, task: Task) -> RewardFn:
        healthy_reward = float(self.reference_env._healthy_reward)
        return functools.partial(
            locomotion_rewards.ant_reward, healthy_reward=healthy_reward, **self._reward_constants(), **self._z_range()
        )

    def termination_fn(self, task: Task) -> TerminationFn | None:
        if not self.reference_env._terminate_when_unhealthy:
            return None
        return functools.partial(locomotion_rewards.ant_terminated, **self._z_range())


class AntCrippledFamily(AntRewards, CrippledFamily):
    """AntCrippled-v0: one leg weakened (`AntCrippledEnv`); training legs 0, 1, 2, OOD leg 3 (see `AntRewards`)."""

    param_names = ("crippled_leg", "crippled_scale")
    part_name = "crippled_leg"
    training_parts = (0, 1, 2)
    ood_parts = (3,)

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(ANT_CRIPPLED_ID, **make_kwargs)


class AntMassFamily(AntRewards, MassDampingFamily):
    """AntMass-v0, CaDM's Ant (Lee et al. 2020; younggyoseo/CaDM cadm/envs/ant_env.py) on Ant-v5
    (`AntCurrentKinematicsEnv`):

    - the mass change is CaDM's: the bodies of the front legs (body indices 2-7) are multiplied by mass_scale and
      those of the back legs (8-13) divided by it, and likewise dofs 2-7 and 8-13 by damping_scale;
    - the reward weights are CaDM's: r = (x' - x)/dt + 0.05 1[healthy(s')] - 0.005 |a|^2, and episodes never
      terminate (CaDM pays the 0.05 in every state; Ant-v5 only in healthy ones).
    """

    required_make_kwargs = {
        **AntRewards.required_make_kwargs,
        "ctrl_cost_weight": 0.005,
        "healthy_reward": 0.05,
        "terminate_when_unhealthy": False,
    }

    def __init__(self, **make_kwargs: Any) -> None:
        super().__init__(ANT_MASS_ID, **make_kwargs)

    def _factors(self, scale: float, count: int) -> np.ndarray:
        factors = np.ones(count)
        factors[2:8], factors[8:14] = scale, 1.0 / scale
        return factors
