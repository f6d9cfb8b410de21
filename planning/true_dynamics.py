"""The environments' true physics as batched torch dynamics: the ceiling for a learned world model.

Each class reproduces its gymnasium 1.x `step` in float64 for a batch of episodes, each with its own task's
constants, and returns float32 next observations (what the environment returns). The constants come from
environments built by the task family, so they are exactly the tasks'. There is no hidden state: the
state is an empty (n, 0) tensor passed through unchanged.

Supported: Pendulum-v1, MountainCarContinuous-v0, CartPole-v1 and PointNavigation-v0 here, and every MuJoCo
locomotion family through MuJoCo itself (`planning.mujoco_dynamics`). Acrobot-v1 integrates its equations with RK4
and is not provided.
"""

from __future__ import annotations

import torch

from env_runner.locomotion import MujocoFamily
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.tasks import Task, TaskFamily
from planning.dynamics import check_step_inputs


class TrueDynamics:
    """Shared plumbing: shape checks, the empty hidden state, float64 arithmetic, one task per episode.

    Constants are float64 tensors of shape (E, 1), one row per episode's task. `step` takes the flat batch
    (N, ·) that planners use, N = E * C (C candidates per episode, episode-major), and the physics see it
    as (E, C, ·) so that every constant broadcasts over its episode's candidates.
    """

    obs_dim: int
    action_dim: int

    def __init__(self, num_episodes: int) -> None:
        self.device = torch.device("cpu")
        self.num_episodes = num_episodes

    def init_hidden(self, n: int) -> torch.Tensor:
        """An empty state (n, 0)."""
        return torch.zeros(n, 0, device=self.device)

    def step(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, obs_dim), model action (N, action_dim), hidden (N, 0) -> next_obs (N, obs_dim), hidden."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        if obs.shape[0] % self.num_episodes:
            raise ValueError(f"a batch of {obs.shape[0]} rows does not split into {self.num_episodes} episodes")
        episodes = (self.num_episodes, -1)
        next_obs = self._physics(
            obs.double().reshape(*episodes, self.obs_dim), action.double().reshape(*episodes, self.action_dim)
        )
        return next_obs.reshape(obs.shape).to(obs.dtype), hidden

    def observe(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Nothing to carry: checks the shapes and returns `hidden`."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        return hidden

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (E, C, obs_dim), action (E, C, action_dim) in float64 -> next obs (E, C, obs_dim)."""
        raise NotImplementedError


class PendulumDynamics(TrueDynamics):
    """Pendulum-v1: obs (cos th, sin th, thdot), action (torque,).

    newthdot = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, +-max_speed), newth = th + newthdot dt,
    with u the torque clipped to +-max_torque.
    """

    obs_dim, action_dim = 3, 1

    def __init__(self, envs: list) -> None:
        super().__init__(len(envs))
        self.g, self.m, self.l, self.dt, self.max_speed, self.max_torque = (
            _stack(envs, name) for name in ("g", "m", "l", "dt", "max_speed", "max_torque")
        )

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        theta = torch.atan2(obs[..., 1], obs[..., 0])
        thdot = obs[..., 2]
        torque = torch.clamp(action[..., 0], -self.max_torque, self.max_torque)
        acceleration = 3.0 * self.g / (2.0 * self.l) * torch.sin(theta) + 3.0 / (self.m * self.l**2) * torque
        new_thdot = torch.clamp(thdot + acceleration * self.dt, -self.max_speed, self.max_speed)
        new_theta = theta + new_thdot * self.dt
        return torch.stack([torch.cos(new_theta), torch.sin(new_theta), new_thdot], dim=-1)


class MountainCarContinuousDynamics(TrueDynamics):
    """MountainCarContinuous-v0: obs (position, velocity), action (force,).

    velocity += clip(force) * power - 0.0025 cos(3 position), clipped to +-max_speed; position += velocity,
    clipped to [min_position, max_position]; a car stopped at the left wall loses its leftward velocity.
    """

    obs_dim, action_dim = 2, 1

    def __init__(self, envs: list) -> None:
        super().__init__(len(envs))
        self.power, self.min_action, self.max_action, self.max_speed, self.min_position, self.max_position = (
            _stack(envs, name)
            for name in ("power", "min_action", "max_action", "max_speed", "min_position", "max_position")
        )

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        position, velocity = obs[..., 0], obs[..., 1]
        force = torch.clamp(action[..., 0], self.min_action, self.max_action)
        velocity = velocity + force * self.power - 0.0025 * torch.cos(3.0 * position)
        velocity = torch.clamp(velocity, -self.max_speed, self.max_speed)
        position = torch.clamp(position + velocity, self.min_position, self.max_position)
        at_left_wall = (position == self.min_position) & (velocity < 0)
        velocity = torch.where(at_left_wall, torch.zeros_like(velocity), velocity)
        return torch.stack([position, velocity], dim=-1)


class CartPoleDynamics(TrueDynamics):
    """CartPole-v1: obs (x, x_dot, theta, theta_dot), one-hot action over (push left, push right).

    The equations of Barto et al. (1983) as gymnasium writes them, integrated with explicit or
    semi-implicit Euler (the environment's `kinematics_integrator`).
    """

    obs_dim, action_dim = 4, 2

    def __init__(self, envs: list) -> None:
        super().__init__(len(envs))
        integrators = {env.kinematics_integrator for env in envs}
        if len(integrators) != 1 or not integrators <= {"euler", "semi-implicit euler"}:
            raise ValueError(f"CartPole kinematics_integrator must be one of euler, semi-implicit euler: {integrators}")
        self.explicit_euler = integrators == {"euler"}
        self.gravity, self.masspole, self.length, self.force_mag, self.tau = (
            _stack(envs, name) for name in ("gravity", "masspole", "length", "force_mag", "tau")
        )
        self.total_mass = self.masspole + _stack(envs, "masscart")
        self.polemass_length = self.masspole * self.length

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x, x_dot, theta, theta_dot = obs.unbind(-1)
        force = torch.where(action.argmax(dim=-1) == 1, self.force_mag, -self.force_mag)
        cos_theta, sin_theta = torch.cos(theta), torch.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sin_theta) / self.total_mass
        theta_acc = (self.gravity * sin_theta - cos_theta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos_theta**2 / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos_theta / self.total_mass
        if self.explicit_euler:
            x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
            theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        else:
            x_dot = x_dot + self.tau * x_acc
            x = x + self.tau * x_dot
            theta_dot = theta_dot + self.tau * theta_acc
            theta = theta + self.tau * theta_dot
        return torch.stack([x, x_dot, theta, theta_dot], dim=-1)


class PointNavigationDynamics(TrueDynamics):
    """PointNavigation-v0: obs (x, y), action a velocity; position += clip(velocity, +-max_speed)."""

    obs_dim, action_dim = 2, 2

    def __init__(self, envs: list) -> None:
        super().__init__(len(envs))
        self.max_speed = _stack(envs, "max_speed").unsqueeze(-1)  # (E, 1, 1)

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return obs + torch.clamp(action, -self.max_speed, self.max_speed)


def _stack(envs: list, name: str) -> torch.Tensor:
    """The attribute `name` of every unwrapped env as a float64 column (E, 1)."""
    return torch.tensor([[float(getattr(env, name))] for env in envs], dtype=torch.float64)


_CLASSES = {
    "Pendulum-v1": PendulumDynamics,
    "MountainCarContinuous-v0": MountainCarContinuousDynamics,
    "CartPole-v1": CartPoleDynamics,
    POINT_NAVIGATION_ID: PointNavigationDynamics,
}


def _dynamics_class(family: TaskFamily) -> type[TrueDynamics] | None:
    if family.env_id in _CLASSES:
        return _CLASSES[family.env_id]
    if isinstance(family, MujocoFamily):  # MuJoCo is imported only for these families
        from planning.mujoco_dynamics import MujocoDynamics

        return MujocoDynamics
    return None


def has_true_dynamics(family: TaskFamily) -> bool:
    return _dynamics_class(family) is not None


def true_dynamics(family: TaskFamily, tasks: list[Task]) -> TrueDynamics:
    """The true physics of `tasks` (one per episode of a batch), read from environments the family builds.

    Raises NotImplementedError for families without a vectorised implementation here.
    """
    dynamics_class = _dynamics_class(family)
    if dynamics_class is None:
        available = ", ".join([*_CLASSES, "the MuJoCo locomotion families"])
        raise NotImplementedError(f"no true dynamics for {family.env_id}: available for {available}")
    envs = [family.make_env(task) for task in tasks]
    try:
        return dynamics_class([env.unwrapped for env in envs])
    finally:
        for env in envs:
            env.close()
