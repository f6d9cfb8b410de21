"""PPO's two formulas: generalised advantage estimation and the clipped surrogate loss, on (N, T) trials.

GAE (Schulman et al. 2016), per row, backwards over t, with V'_t the value of the state after step t:

    V'_t     = 0                           if the step terminated the episode (no bootstrap)
             = V(final observation)        if the step truncated it (time limit: bootstrap)
             = V_{t+1}                     otherwise
    delta_t  = r_t + gamma * V'_t - V_t
    A_t      = delta_t + gamma * lambda * (1 - end_t) * A_{t+1}        end_t = terminated_t or truncated_t
    R_t      = A_t + V_t                                               (the value target)

The truncation bootstrap V(final observation) is computed when the step is collected, with the memory
state of that moment. An episode end cuts the advantage chain but not the policy's memory.

Clipped objective (Schulman et al. 2017), with ratio rho_t = exp(log pi(a_t) - log pi_old(a_t)) and
advantages normalised over the minibatch's valid steps:

    L_pi  = -mean_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)
    L_V   = 0.5 mean_t max((V_t - R_t)^2, (V_old,t + clip(V_t - V_old,t, -eps, eps) - R_t)^2)   (or unclipped)
    L     = L_pi - c_H mean_t H[pi(.|x_t)] + c_V L_V

Means run over valid steps only (`valid` (N, T) is False on padding after a trial has ended).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    bootstrap_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets, both (N, T), from (N, T) rewards, values, truncation bootstraps and flags.

    Every row must end with an episode end (or padding after one): the step after the last is never read.
    """
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # (N, T)
    next_values = torch.where(truncated, bootstrap_values, next_values)
    next_values = torch.where(terminated, torch.zeros_like(next_values), next_values)
    deltas = rewards + gamma * next_values - values  # (N, T)
    carry = (1.0 - (terminated | truncated).to(values.dtype)) * gamma * gae_lambda  # (N, T)
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])  # (N,)
    for t in reversed(range(values.shape[1])):
        running = deltas[:, t] + carry[:, t] * running
        advantages[:, t] = running
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the entries where `mask` is True (same shapes)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


@dataclass
class PPOLoss:
    """The total loss to minimise and its parts (detached diagnostics beside it)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def ppo_loss(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    valid: torch.Tensor,
    *,
    clip_coef: float,
    clip_value_loss: bool,
    ent_coef: float,
    vf_coef: float,
) -> PPOLoss:
    """The clipped PPO loss over a minibatch of (N, T) steps; only `valid` steps count."""
    valid_advantages = advantages[valid]
    advantages = (advantages - valid_advantages.mean()) / (valid_advantages.std(correction=0) + 1e-8)
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    policy_loss = masked_mean(
        torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef)), valid
    )
    value_error = (new_values - returns) ** 2
    if clip_value_loss:
        clipped_values = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.max(value_error, (clipped_values - returns) ** 2)
    value_loss = 0.5 * masked_mean(value_error, valid)
    entropy_mean = masked_mean(entropy, valid)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, valid)  # the k3 estimator of KL(old || new)
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip_coef).float(), valid)
    total = policy_loss - ent_coef * entropy_mean + vf_coef * value_loss
    return PPOLoss(total, policy_loss, value_loss, entropy_mean, approx_kl, clip_fraction)
