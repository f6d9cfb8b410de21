"""Closed-form rewards of the supported environments, as torch functions over batched transitions.

Every function takes obs (..., obs_dim), model action (..., action_dim) and next_obs (..., obs_dim)
and returns the reward (...,), matching what the gymnasium environment returns for that transition;
the termination functions return bool (...,): the transition ends the episode.
Task families bind the environment constants (and the goal, for navigation) with `functools.partial`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def pendulum_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, max_torque: float) -> torch.Tensor:
    """-(theta^2 + 0.1 thdot^2 + 0.001 u^2) on the state before the step and the clipped torque.

    obs = (cos theta, sin theta, thdot); atan2 already returns theta normalised to (-pi, pi].
    """
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = action[..., 0].clamp(-max_torque, max_torque)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


def mountain_car_continuous_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    goal_position: float,
    goal_velocity: float,
) -> torch.Tensor:
    """-0.1 a^2 (the unclipped action, as gymnasium computes it), plus 100 on reaching the goal.

    next_obs = (position, velocity); the goal is reached when position >= goal_position and
    velocity >= goal_velocity.
    """
    reached = mountain_car_reached_goal(obs, action, next_obs, goal_position, goal_velocity)
    return 100.0 * reached.to(action.dtype) - 0.1 * action[..., 0] ** 2


def cartpole_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    x_threshold: float,
    theta_threshold: float,
) -> torch.Tensor:
    """1 for every step taken from a non-terminal state (the step that ends the episode included).

    obs = (x, x_dot, theta, theta_dot); the state is terminal once |x| > x_threshold or
    |theta| > theta_threshold.
    """
    inside = (obs[..., 0].abs() <= x_threshold) & (obs[..., 2].abs() <= theta_threshold)
    return inside.to(obs.dtype)


def acrobot_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """-1 per step unless the next state is terminal (the tip above the bar), then 0.

    next_obs = (cos t1, sin t1, cos t2, sin t2, dt1, dt2); terminal when
    -cos(t1) - cos(t1 + t2) > 1, with cos(t1 + t2) = cos t1 cos t2 - sin t1 sin t2.
    """
    cos1, sin1, cos2, sin2 = (next_obs[..., i] for i in range(4))
    height = -cos1 - (cos1 * cos2 - sin1 * sin2)
    return (height > 1.0).to(next_obs.dtype) - 1.0


def navigation_reward(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, goal: torch.Tensor | tuple[float, float]
) -> torch.Tensor:
    """Minus the Euclidean distance from the next position (..., 2) to the goal ((2,) or broadcastable)."""
    goal_tensor = torch.as_tensor(goal, dtype=next_obs.dtype, device=next_obs.device)
    return -torch.linalg.vector_norm(next_obs - goal_tensor, dim=-1)


def cartpole_terminated(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, x_threshold: float, theta_threshold: float
) -> torch.Tensor:
    """The pole fell or the cart left the track: |x'| > x_threshold or |theta'| > theta_threshold."""
    return (next_obs[..., 0].abs() > x_threshold) | (next_obs[..., 2].abs() > theta_threshold)


def mountain_car_reached_goal(
    obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, goal_position: float, goal_velocity: float
) -> torch.Tensor:
    """The car reached the flag: position' >= goal_position and velocity' >= goal_velocity."""
    return (next_obs[..., 0] >= goal_position) & (next_obs[..., 1] >= goal_velocity)


def acrobot_terminated(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """The tip swung above the bar: -cos t1 - cos(t1 + t2) > 1 in the next state."""
    return acrobot_reward(obs, action, next_obs) == 0.0


def mountain_car_energy(obs: torch.Tensor) -> torch.Tensor:
    """Mechanical energy per unit mass of the car (..., 2) -> (...,): v^2 / 2 + 0.0025 sin(3 x) / 3 (the potential
    whose slope is the 0.0025 cos(3 x) gravity term of the dynamics)."""
    return 0.5 * obs[..., 1] ** 2 + 0.0025 / 3.0 * torch.sin(3.0 * obs[..., 0])


def potential_shaped(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    reward_fn: RewardFn,
    potential: Callable[[torch.Tensor], torch.Tensor],
    scale: float,
) -> torch.Tensor:
    """reward + scale * (potential(next_obs) - potential(obs)): potential-based shaping (Ng et al. 1999), which
    leaves the optimal policies of the undiscounted episodic task unchanged and over a planning horizon adds
    scale * (potential at the horizon - potential now), a terminal value."""
    return reward_fn(obs, action, next_obs) + scale * (potential(next_obs) - potential(obs))
