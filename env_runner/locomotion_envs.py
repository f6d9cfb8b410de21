"""Locomotion environments of our own on gymnasium's v5 ones: crippled motors, the GrBAL benchmarks (Nagabandi et
al. 2019), and an Ant whose reward reads its observations.

Importing this module needs MuJoCo (`pip install "gymnasium[mujoco]"`); gymnasium imports it only when
`HalfCheetahCrippled-v0`, `AntCrippled-v0` or `AntMass-v0` is made (see
`env_runner.locomotion.register_locomotion_envs`).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.utils import EzPickle


class CrippledMotors:
    """Mixin for a MuJoCo env whose crippled motors deliver only `crippled_scale` of their torque.

    The torque of motor j is tau_j = s_j gear_j clip(a_j, -1, 1) with s_j = crippled_scale for the motors
    `crippled_motors()` names and 1 otherwise (0 disables them): the gears are rescaled from their
    load-time values before every step, from the attributes a task family sets. The reward stays the
    base env's, computed on the *commanded* action a: the task changes the dynamics only, so one reward
    function serves every task.
    """

    crippled_scale: float

    def _keep_load_time_gear(self) -> None:
        self._load_time_gear = self.model.actuator_gear[:, 0].copy()

    def crippled_motors(self) -> tuple[int, ...]:
        raise NotImplementedError

    def motor_strengths(self) -> np.ndarray:
        """(nu,) float64: the share of its torque each motor delivers, s_j above.

        Raises ValueError for a scale outside [0, 1] (and, from `crippled_motors`, for an unknown index).
        """
        if not 0.0 <= self.crippled_scale <= 1.0:
            raise ValueError(f"crippled_scale must lie in [0, 1], received {self.crippled_scale}")
        strengths = np.ones(self.model.nu)
        strengths[list(self.crippled_motors())] = self.crippled_scale
        return strengths

    def do_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        """Step the simulation with the motors' gears scaled by `motor_strengths()` (MuJoCo clips ctrl first)."""
        self.model.actuator_gear[:, 0] = self._load_time_gear * self.motor_strengths()
        super().do_simulation(ctrl, n_frames)


def check_index(value: float, count: int, name: str) -> int:
    """`value` as an int in [0, count) (task params store it as a float); ValueError otherwise."""
    if value != int(value) or not 0 <= value < count:
        raise ValueError(f"{name} must be an integer in [0, {count}), received {value}")
    return int(value)


class HalfCheetahCrippledEnv(CrippledMotors, HalfCheetahEnv):
    """HalfCheetah-v5 whose motor `crippled_joint` delivers only `crippled_scale` of its torque (`CrippledMotors`).

    Motors (index: name, gear): 0 bthigh 120, 1 bshin 90, 2 bfoot 60, 3 fthigh 120, 4 fshin 60, 5 ffoot 30.
    Reward (x' - x)/dt - 0.1 |a|^2, as HalfCheetah-v5. The defaults cripple nothing (scale 1); other
    keyword arguments go to `HalfCheetahEnv`.
    """

    def __init__(self, crippled_joint: float = 0.0, crippled_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        EzPickle.__init__(self, crippled_joint, crippled_scale, **kwargs)
        self.crippled_joint = crippled_joint
        self.crippled_scale = crippled_scale
        self._keep_load_time_gear()

    def crippled_motors(self) -> tuple[int, ...]:
        return (check_index(self.crippled_joint, self.model.nu, "crippled_joint"),)


class AntCurrentKinematicsEnv(AntEnv):
    """Ant-v5 with one difference (`AntMass-v0`): Ant-v5 measures the forward velocity on the torso position MuJoCo
    computed during the last integration sub-step (`data.xpos`, stale after `mj_step`), which no observation holds;
    here body positions are recomputed from the final state (`mj_kinematics`) after every step, so the torso's x is
    qpos[0] = obs[0] and the forward reward is (x' - x)/dt. Keyword arguments go to `AntEnv`."""

    def do_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        """Step as Ant-v5, then bring body positions up to date with the final qpos."""
        super().do_simulation(ctrl, n_frames)
        mujoco.mj_kinematics(self.model, self.data)


class AntCrippledEnv(CrippledMotors, AntCurrentKinematicsEnv):
    """`AntCurrentKinematicsEnv` whose leg `crippled_leg` (its hip and ankle motors) delivers only `crippled_scale`
    of its torque.

    Legs (index: motors): 0 (hip_4, ankle_4), 1 (hip_1, ankle_1), 2 (hip_2, ankle_2), 3 (hip_3, ankle_3),
    all of gear 150. The defaults cripple nothing (scale 1); other keyword arguments go to `AntEnv`.
    """

    legs = ((0, 1), (2, 3), (4, 5), (6, 7))

    def __init__(self, crippled_leg: float = 0.0, crippled_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        EzPickle.__init__(self, crippled_leg, crippled_scale, **kwargs)
        self.crippled_leg = crippled_leg
        self.crippled_scale = crippled_scale
        self._keep_load_time_gear()

    def crippled_motors(self) -> tuple[int, ...]:
        return self.legs[check_index(self.crippled_leg, len(self.legs), "crippled_leg")]
