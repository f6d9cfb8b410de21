"""Locomotion environments of our own on gymnasium's v5 ones: crippled motors, the GrBAL benchmarks (Nagabandi et
al. 2019), an Ant whose reward reads its observations, and the goal-conditioned rewards of the meta-RL benchmarks
(a target velocity or direction: Finn et al. 2017, Rothfuss et al. 2019).

Importing this module needs MuJoCo (`pip install "gymnasium[mujoco]"`); gymnasium imports it only when one of
these environments is made (see `env_runner.locomotion.register_locomotion_envs`).
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

    def task_gears(self) -> np.ndarray:
        """(nu,) float64: each motor's gear under the task, its load-time gear times `motor_strengths()`."""
        return self._load_time_gear * self.motor_strengths()

    def do_simulation(self, ctrl: np.ndarray, n_frames: int) -> None:
        """Step the simulation with the motors' gears at `task_gears()` (MuJoCo clips ctrl first)."""
        self.model.actuator_gear[:, 0] = self.task_gears()
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


class HalfCheetahVelEnv(HalfCheetahEnv):
    """HalfCheetah-v5 rewarded for running at `goal_velocity` (MAML's HalfCheetahVel, Finn et al. 2017):
    r = -|v - goal_velocity| - ctrl_cost_weight |a|^2 with v = (x' - x)/dt and ctrl_cost_weight 0.05 by default.
    The dynamics are HalfCheetah-v5's; other keyword arguments go to `HalfCheetahEnv`."""

    def __init__(self, goal_velocity: float = 1.0, ctrl_cost_weight: float = 0.05, **kwargs: Any) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        EzPickle.__init__(self, goal_velocity, ctrl_cost_weight, **kwargs)
        self.goal_velocity = goal_velocity

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        forward_reward = -abs(x_velocity - self.goal_velocity)
        ctrl_cost = self.control_cost(action)
        return forward_reward - ctrl_cost, {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}


class HalfCheetahDirEnv(HalfCheetahEnv):
    """HalfCheetah-v5 rewarded for running in `goal_direction` (+1 forward, -1 backward; MAML's HalfCheetahDir):
    r = goal_direction v - ctrl_cost_weight |a|^2 with v = (x' - x)/dt and ctrl_cost_weight 0.05 by default."""

    def __init__(self, goal_direction: float = 1.0, ctrl_cost_weight: float = 0.05, **kwargs: Any) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        EzPickle.__init__(self, goal_direction, ctrl_cost_weight, **kwargs)
        self.goal_direction = goal_direction

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        if self.goal_direction not in (-1.0, 1.0):
            raise ValueError(f"goal_direction must be +1 or -1, received {self.goal_direction}")
        forward_reward = self.goal_direction * x_velocity
        ctrl_cost = self.control_cost(action)
        return forward_reward - ctrl_cost, {"reward_forward": forward_reward, "reward_ctrl": -ctrl_cost}


class AntDirEnv(AntCurrentKinematicsEnv):
    """`AntCurrentKinematicsEnv` rewarded for walking in the planar direction at angle `goal_angle` (radians; ProMP's
    AntRandDirec2DEnv, Rothfuss et al. 2019, on Ant-v5): r = (xy' - xy)/dt . (cos, sin)(goal_angle) + healthy reward
    - costs, the healthy reward and the control and contact costs as Ant-v5 computes them."""

    def __init__(self, goal_angle: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        EzPickle.__init__(self, goal_angle, **kwargs)
        self.goal_angle = goal_angle

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Ant-v5's step with the forward reward measured along the goal direction instead of x."""
        xy_before = self.data.qpos[:2].copy()
        observation, _, terminated, truncated, info = super().step(action)
        velocity = (self.data.qpos[:2] - xy_before) / self.dt
        forward_reward = float(velocity @ np.array([np.cos(self.goal_angle), np.sin(self.goal_angle)]))
        reward = forward_reward + info["reward_survive"] + info["reward_ctrl"] + info["reward_contact"]
        return observation, reward, terminated, truncated, {**info, "reward_forward": forward_reward}
