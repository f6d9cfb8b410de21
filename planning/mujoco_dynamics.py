"""MuJoCo's own physics as batched dynamics: the true-dynamics ceiling of the locomotion families.

Every observation of these families is (qpos, qvel), the root's position included (`env_runner.locomotion`), so a
candidate's simulator state is its observation: `step` writes each row's qpos and qvel into a full physics state
and advances it by the environment's `frame_skip` MuJoCo steps with the action held, in one `mujoco.rollout` call
for all E * C rows (each with its episode's task model: masses, damping and crippled gears as the task's
environment has them). Hopper's observation clips the velocities at +-10, as the observation does; a state whose
velocity exceeds that starts from the clipped one. MuJoCo clamps each control to its range, as in the environment.

The hidden state is empty, (n, 0); the rows run on as many MuJoCo threads as torch has (`core.threads`).
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from mujoco import rollout

from planning.true_dynamics import TrueDynamics

FULL_PHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS
HOPPER_VELOCITY_CLIP = 10.0  # Hopper-v5 observes clip(qvel, -10, 10)


def task_model(env) -> mujoco.MjModel:
    """A copy of the unwrapped env's model as its task made it, crippled motors' gears applied (the env applies them
    before every step)."""
    model = copy.deepcopy(env.model)
    if hasattr(env, "task_gears"):
        model.actuator_gear[:, 0] = env.task_gears()
    return model


class MujocoDynamics(TrueDynamics):
    """The task environments' MuJoCo models stepped from observed states: obs (qpos, qvel), action the controls."""

    def __init__(self, envs: list) -> None:
        super().__init__(len(envs))
        first = envs[0]
        self.models = [task_model(env) for env in envs]
        self.nq, self.nv = first.model.nq, first.model.nv
        self.obs_dim, self.action_dim = self.nq + self.nv, first.model.nu
        self.frame_skip = first.frame_skip
        self.velocity_clip = HOPPER_VELOCITY_CLIP if isinstance(first, HopperEnv) else None
        data = mujoco.MjData(self.models[0])
        self.template = np.zeros(mujoco.mj_stateSize(self.models[0], FULL_PHYSICS))
        mujoco.mj_getState(self.models[0], data, self.template, FULL_PHYSICS)  # (time, qpos, qvel, ...)
        self._datas: list[mujoco.MjData] = []

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        episodes, candidates = obs.shape[:2]
        rows = episodes * candidates
        state = np.tile(self.template, (rows, 1))  # (N, nstate)
        state[:, 1 : 1 + self.obs_dim] = obs.reshape(rows, -1).cpu().numpy()
        control = np.repeat(action.reshape(rows, 1, -1).cpu().numpy(), self.frame_skip, axis=1)  # (N, skip, nu)
        models = [model for model in self.models for _ in range(candidates)]
        states, _ = rollout.rollout(models, self._threads(), state, control, persistent_pool=True)
        next_obs = torch.from_numpy(states[:, -1, 1 : 1 + self.obs_dim].copy())  # (N, nq + nv)
        if self.velocity_clip is not None:
            next_obs[:, self.nq :] = next_obs[:, self.nq :].clamp(-self.velocity_clip, self.velocity_clip)
        return next_obs.reshape(episodes, candidates, -1)

    def _threads(self) -> list[mujoco.MjData]:
        """One MjData per torch thread (the pool's thread count)."""
        wanted = torch.get_num_threads()
        while len(self._datas) < wanted:
            self._datas.append(mujoco.MjData(self.models[0]))
        return self._datas[:wanted]
