"""Closed-form rewards and terminations of the MuJoCo locomotion families, as torch functions.

Every function takes obs (..., obs_dim), model action (..., action_dim) and next_obs (..., obs_dim), the
observations *including* the root's x position at index 0 (the families make their environments with
`exclude_current_positions_from_observation=False`), and returns (...,): the reward gymnasium's v5
environment pays for that transition, or bool for the terminations. Families bind the environment
constants (time step, weights, healthy ranges) with `functools.partial`.

Observation layout with x included: obs = (qpos, qvel), x = qpos[0].
- HalfCheetah (18,): qpos (9,) = (x, z, pitch, 6 joint angles), qvel (9,).
- Hopper (12,): qpos (6,) = (x, z, pitch, thigh, leg, foot), qvel (6,) clipped to [-10, 10].
- Ant (29,), made without contact forces: qpos (15,) = (x, y, z, torso quaternion, 8 joint angles), qvel (14,).
"""

from __future__ import annotations

import torch

Range = tuple[float, float]


def forward_velocity(obs: torch.Tensor, next_obs: torch.Tensor, dt: float) -> torch.Tensor:
    """(x' - x) / dt, the root's forward velocity over the step (...,)."""
    return (next_obs[..., 0] - obs[..., 0]) / dt


def control_cost(action: torch.Tensor, ctrl_cost_weight: float) -> torch.Tensor:
    """w_c |a|^2 on the commanded action (...,), unclipped, as gymnasium computes it."""
    return ctrl_cost_weight * (action**2).sum(dim=-1)


def running_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    dt: float,
    forward_reward_weight: float,
    ctrl_cost_weight: float,
) -> torch.Tensor:
    """HalfCheetah-v5: w_f (x' - x)/dt - w_c |a|^2 (defaults w_f = 1, w_c = 0.1, dt = 0.05)."""
    return forward_reward_weight * forward_velocity(obs, next_obs, dt) - control_cost(action, ctrl_cost_weight)


def hopper_healthy(next_obs: torch.Tensor, z_range: Range, angle_range: Range, state_range: Range) -> torch.Tensor:
    """Hopper-v5's `is_healthy` on the next state (...,) bool, all bounds strict:

    z_low < z' < z_high (z' = obs[1]), angle_low < pitch' < angle_high (pitch' = obs[2]), and every entry
    of the state after (x, z), obs[2:], inside state_range. gymnasium checks the unclipped velocities,
    the observation holds them clipped to [-10, 10]: a velocity beyond the state range (default +-100)
    is invisible here.
    """
    z, angle, state = next_obs[..., 1], next_obs[..., 2], next_obs[..., 2:]
    healthy_z = (z > z_range[0]) & (z < z_range[1])
    healthy_angle = (angle > angle_range[0]) & (angle < angle_range[1])
    healthy_state = ((state > state_range[0]) & (state < state_range[1])).all(dim=-1)
    return healthy_z & healthy_angle & healthy_state


def hopper_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    dt: float,
    forward_reward_weight: float,
    ctrl_cost_weight: float,
    healthy_reward: float,
    z_range: Range,
    angle_range: Range,
    state_range: Range,
) -> torch.Tensor:
    """Hopper-v5: w_f (x' - x)/dt + r_h 1[healthy(s')] - w_c |a|^2 (defaults w_f 1, r_h 1, w_c 1e-3, dt 0.008).

    v5 pays the healthy reward only when the next state is healthy, whether or not unhealthy states
    terminate the episode: the terminal step of an episode earns no healthy reward.
    """
    healthy = hopper_healthy(next_obs, z_range, angle_range, state_range).to(next_obs.dtype)
    running = running_reward(obs, action, next_obs, dt, forward_reward_weight, ctrl_cost_weight)
    return running + healthy_reward * healthy


def hopper_terminated(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    z_range: Range,
    angle_range: Range,
    state_range: Range,
) -> torch.Tensor:
    """Hopper-v5 with `terminate_when_unhealthy`: the episode ends when the next state is unhealthy."""
    return ~hopper_healthy(next_obs, z_range, angle_range, state_range)


def ant_healthy(next_obs: torch.Tensor, z_range: Range) -> torch.Tensor:
    """Ant-v5's `is_healthy` on the next state (...,) bool: every entry finite and z_low <= z' <= z_high
    (z' = obs[2]; the observation without contact forces is the whole state (qpos, qvel))."""
    z = next_obs[..., 2]
    return torch.isfinite(next_obs).all(dim=-1) & (z >= z_range[0]) & (z <= z_range[1])


def ant_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    dt: float,
    forward_reward_weight: float,
    ctrl_cost_weight: float,
    healthy_reward: float,
    z_range: Range,
) -> torch.Tensor:
    """Ant-v5 without contact cost: w_f (x' - x)/dt + r_h 1[healthy(s')] - w_c |a|^2 (defaults w_f 1, r_h 1,
    w_c 0.5, dt 0.05). As for Hopper-v5, the healthy reward is paid only when the next state is healthy."""
    healthy = ant_healthy(next_obs, z_range).to(next_obs.dtype)
    running = running_reward(obs, action, next_obs, dt, forward_reward_weight, ctrl_cost_weight)
    return running + healthy_reward * healthy


def ant_terminated(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, z_range: Range) -> torch.Tensor:
    """Ant-v5 with `terminate_when_unhealthy`: the episode ends when the next state is unhealthy."""
    return ~ant_healthy(next_obs, z_range)


def velocity_tracking_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    goal_velocity: torch.Tensor | float,
    dt: float,
    ctrl_cost_weight: float,
) -> torch.Tensor:
    """HalfCheetahVel: -|(x' - x)/dt - goal_velocity| - w_c |a|^2 (goal_velocity broadcast against (...,))."""
    return -(forward_velocity(obs, next_obs, dt) - goal_velocity).abs() - control_cost(action, ctrl_cost_weight)


def direction_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    goal_direction: torch.Tensor | float,
    dt: float,
    ctrl_cost_weight: float,
) -> torch.Tensor:
    """HalfCheetahDir: goal_direction (x' - x)/dt - w_c |a|^2, goal_direction +1 or -1 (broadcast against (...,))."""
    return goal_direction * forward_velocity(obs, next_obs, dt) - control_cost(action, ctrl_cost_weight)


def planar_direction_reward(
    obs: torch.Tensor,
    action: torch.Tensor,
    next_obs: torch.Tensor,
    goal_angle: torch.Tensor | float,
    dt: float,
    ctrl_cost_weight: float,
    healthy_reward: float,
    z_range: Range,
) -> torch.Tensor:
    """AntDir (without contact cost): (xy' - xy)/dt . (cos, sin)(goal_angle) + r_h 1[healthy(s')] - w_c |a|^2,
    xy = obs[..., :2]."""
    angle = torch.as_tensor(goal_angle, dtype=obs.dtype, device=obs.device)
    velocity = (next_obs[..., :2] - obs[..., :2]) / dt
    along = velocity[..., 0] * torch.cos(angle) + velocity[..., 1] * torch.sin(angle)
    healthy = ant_healthy(next_obs, z_range).to(next_obs.dtype)
    return along + healthy_reward * healthy - control_cost(action, ctrl_cost_weight)
