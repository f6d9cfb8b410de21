"""The environments' true physics as batched torch dynamics: the ceiling for a learned world model.

Each class reproduces its gymnasium 1.x `step` in float64 for a whole batch of observations and
returns float32 next observations (what the environment returns). The physical constants come from an
environment built by the task family, so they are exactly the task's. There is no hidden state: the
state is an empty (n, 0) tensor passed through unchanged.

Supported: Pendulum-v1, MountainCarContinuous-v0, CartPole-v1 and PointNavigation-v0. Acrobot-v1
integrates its equations with RK4 and is not provided.
"""

from __future__ import annotations

import torch

from control.dynamics import check_step_inputs
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.tasks import Task, TaskFamily


class TrueDynamics:
    """Shared plumbing: shape checks, the empty hidden state, float64 arithmetic."""

    obs_dim: int
    action_dim: int

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def init_hidden(self, n: int) -> torch.Tensor:
        """An empty state (n, 0)."""
        return torch.zeros(n, 0, device=self.device)

    def step(
        self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, obs_dim), model action (N, action_dim), hidden (N, 0) -> next_obs (N, obs_dim), hidden."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        next_obs = self._physics(obs.double(), action.double())
        return next_obs.to(obs.dtype), hidden

    def observe(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Nothing to carry: checks the shapes and returns `hidden`."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        return hidden

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PendulumDynamics(TrueDynamics):
    """Pendulum-v1: obs (cos th, sin th, thdot), action (torque,).

    newthdot = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, +-max_speed), newth = th + newthdot dt,
    with u the torque clipped to +-max_torque.
    """

    obs_dim, action_dim = 3, 1

    def __init__(self, g: float, m: float, l: float, dt: float, max_speed: float, max_torque: float) -> None:  # noqa: E741
        super().__init__()
        self.g, self.m, self.l, self.dt = g, m, l, dt
        self.max_speed, self.max_torque = max_speed, max_torque

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        theta = torch.atan2(obs[:, 1], obs[:, 0])
        thdot = obs[:, 2]
        torque = action[:, 0].clamp(-self.max_torque, self.max_torque)
        acceleration = 3.0 * self.g / (2.0 * self.l) * torch.sin(theta) + 3.0 / (self.m * self.l**2) * torque
        new_thdot = (thdot + acceleration * self.dt).clamp(-self.max_speed, self.max_speed)
        new_theta = theta + new_thdot * self.dt
        return torch.stack([torch.cos(new_theta), torch.sin(new_theta), new_thdot], dim=1)


class MountainCarContinuousDynamics(TrueDynamics):
    """MountainCarContinuous-v0: obs (position, velocity), action (force,).

    velocity += clip(force) * power - 0.0025 cos(3 position), clipped to +-max_speed; position += velocity,
    clipped to [min_position, max_position]; a car stopped at the left wall loses its leftward velocity.
    """

    obs_dim, action_dim = 2, 1

    def __init__(
        self,
        power: float,
        min_action: float,
        max_action: float,
        max_speed: float,
        min_position: float,
        max_position: float,
    ) -> None:
        super().__init__()
        self.power, self.min_action, self.max_action = power, min_action, max_action
        self.max_speed, self.min_position, self.max_position = max_speed, min_position, max_position

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        position, velocity = obs[:, 0], obs[:, 1]
        force = action[:, 0].clamp(self.min_action, self.max_action)
        velocity = velocity + force * self.power - 0.0025 * torch.cos(3.0 * position)
        velocity = velocity.clamp(-self.max_speed, self.max_speed)
        position = (position + velocity).clamp(self.min_position, self.max_position)
        at_left_wall = (position == self.min_position) & (velocity < 0)
        velocity = torch.where(at_left_wall, torch.zeros_like(velocity), velocity)
        return torch.stack([position, velocity], dim=1)


class CartPoleDynamics(TrueDynamics):
    """CartPole-v1: obs (x, x_dot, theta, theta_dot), one-hot action over (push left, push right).

    The equations of Barto et al. (1983) as gymnasium writes them, integrated with explicit or
    semi-implicit Euler (the environment's `kinematics_integrator`).
    """

    obs_dim, action_dim = 4, 2

    def __init__(
        self,
        gravity: float,
        masspole: float,
        masscart: float,
        length: float,
        force_mag: float,
        tau: float,
        kinematics_integrator: str,
    ) -> None:
        super().__init__()
        if kinematics_integrator not in ("euler", "semi-implicit euler"):
            raise ValueError(f"unknown CartPole kinematics_integrator {kinematics_integrator!r}")
        self.gravity, self.masspole, self.length = gravity, masspole, length
        self.total_mass = masspole + masscart
        self.polemass_length = masspole * length
        self.force_mag, self.tau = force_mag, tau
        self.explicit_euler = kinematics_integrator == "euler"

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x, x_dot, theta, theta_dot = obs.unbind(1)
        force = torch.where(action.argmax(dim=1) == 1, self.force_mag, -self.force_mag).to(obs.dtype)
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
        return torch.stack([x, x_dot, theta, theta_dot], dim=1)


class PointNavigationDynamics(TrueDynamics):
    """PointNavigation-v0: obs (x, y), action a velocity; position += clip(velocity, +-max_speed)."""

    obs_dim, action_dim = 2, 2

    def __init__(self, max_speed: float) -> None:
        super().__init__()
        self.max_speed = max_speed

    def _physics(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return obs + action.clamp(-self.max_speed, self.max_speed)


def _pendulum(env) -> PendulumDynamics:
    return PendulumDynamics(env.g, env.m, env.l, env.dt, env.max_speed, env.max_torque)


def _mountain_car(env) -> MountainCarContinuousDynamics:
    return MountainCarContinuousDynamics(
        env.power, env.min_action, env.max_action, env.max_speed, env.min_position, env.max_position
    )


def _cartpole(env) -> CartPoleDynamics:
    return CartPoleDynamics(
        env.gravity, env.masspole, env.masscart, env.length, env.force_mag, env.tau, env.kinematics_integrator
    )


def _point_navigation(env) -> PointNavigationDynamics:
    return PointNavigationDynamics(env.max_speed)


_BUILDERS = {
    "Pendulum-v1": _pendulum,
    "MountainCarContinuous-v0": _mountain_car,
    "CartPole-v1": _cartpole,
    POINT_NAVIGATION_ID: _point_navigation,
}


def true_dynamics(family: TaskFamily, task: Task) -> TrueDynamics:
    """The true physics of `task`, read from an environment the family builds for it.

    Raises NotImplementedError for families without a closed-form, vectorised implementation here.
    """
    if family.env_id not in _BUILDERS:
        raise NotImplementedError(
            f"no true dynamics for {family.env_id}: available for {', '.join(_BUILDERS)}"
        )
    env = family.make_env(task)
    try:
        return _BUILDERS[family.env_id](env.unwrapped)
    finally:
        env.close()
