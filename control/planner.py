"""Sampling-based model-predictive control: CEM (Chua et al. 2018, PETS) and MPPI (Williams et al. 2017).

Every planning step samples C candidate action sequences of H steps, rolls all of them through the
dynamics in one batch (C, ·) from the current real observation and the hidden state of the real
trajectory, scores each by its (discounted) sum of rewards under the task's reward function, refines
the sampling distribution for a few iterations, and returns the first action of the final plan. The
rest of the plan warm-starts the next step (shifted by one). Discrete action spaces use CEM over
per-step categorical distributions and feed one-hot actions to the dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from control.dynamics import Dynamics
from env_runner.actions import action_dim, is_discrete, one_hot_actions
from env_runner.rewards import RewardFn


@dataclass
class PlannerConfig:
    """Sampling settings shared by the planners.

    horizon: H steps per candidate sequence. num_candidates: C sequences per iteration.
    num_iterations: refinements of the sampling distribution per planning step.
    elite_fraction: share of the best candidates CEM refits on. discount: reward weight gamma^t.
    init_std: initial Gaussian std as a fraction of the Box half-width (Box spaces).
    momentum: weight of the previous distribution when CEM refits (PETS' alpha).
    temperature: MPPI weights are softmax(standardised return / temperature).
    warm_start_weight: discrete spaces start each planning step from this mix of the previous plan's
    (shifted) probabilities and the uniform distribution, so that collapsed probabilities explore again.
    """

    horizon: int = 20
    num_candidates: int = 300
    num_iterations: int = 4
    elite_fraction: float = 0.1
    discount: float = 1.0
    init_std: float = 0.5
    momentum: float = 0.1
    temperature: float = 0.5
    warm_start_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("horizon", "num_candidates", "num_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, received {getattr(self, name)}")
        if not 0.0 < self.elite_fraction <= 1.0:
            raise ValueError(f"elite_fraction must be in (0, 1], received {self.elite_fraction}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], received {self.discount}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), received {self.momentum}")
        if not 0.0 <= self.warm_start_weight <= 1.0:
            raise ValueError(f"warm_start_weight must be in [0, 1], received {self.warm_start_weight}")
        if self.init_std <= 0 or self.temperature <= 0:
            raise ValueError(f"init_std and temperature must be > 0, received {self.init_std}, {self.temperature}")

    @property
    def num_elites(self) -> int:
        return max(1, round(self.elite_fraction * self.num_candidates))


def rollout_returns(
    dynamics: Dynamics,
    reward_fn: RewardFn,
    obs: torch.Tensor,
    hidden: torch.Tensor,
    actions: torch.Tensor,
    discount: float = 1.0,
) -> torch.Tensor:
    """Discounted return of every candidate: obs (1, obs_dim), hidden (1, ...), actions (C, H, action_dim) -> (C,).

    All C candidates start from the same observation and hidden state (expanded to batch C) and are
    stepped together through `dynamics.step`.
    """
    if actions.dim() != 3 or obs.dim() != 2 or obs.shape[0] != 1 or hidden.dim() < 1 or hidden.shape[0] != 1:
        raise ValueError(
            "rollout_returns expects obs (1, obs_dim), hidden (1, ...) and actions (C, H, action_dim), received "
            f"{tuple(obs.shape)}, {tuple(hidden.shape)} and {tuple(actions.shape)}"
        )
    num_candidates, horizon = actions.shape[:2]
    obs = obs.expand(num_candidates, -1)
    hidden = hidden.expand(num_candidates, *hidden.shape[1:])
    total = torch.zeros(num_candidates, device=obs.device)
    weight = 1.0
    for t in range(horizon):
        next_obs, hidden = dynamics.step(obs, actions[:, t], hidden)
        total = total + weight * reward_fn(obs, actions[:, t], next_obs)
        obs, weight = next_obs, weight * discount
    return total


class ShootingPlanner:
    """Base of the planners: validation, seeding, batched scoring, warm start and env-action conversion."""

    supports_discrete = True

    def __init__(
        self,
        dynamics: Dynamics,
        reward_fn: RewardFn,
        action_space: spaces.Space,
        config: PlannerConfig | None = None,
        seed: int = 0,
    ) -> None:
        if action_dim(action_space) != dynamics.action_dim:
            raise ValueError(
                f"action space {action_space} has model action dim {action_dim(action_space)}, "
                f"the dynamics expect {dynamics.action_dim}"
            )
        if is_discrete(action_space) and not self.supports_discrete:
            raise ValueError(f"{type(self).__name__} needs a Box action space, received {action_space}: use CEMPlanner")
        self.dynamics = dynamics
        self.reward_fn = reward_fn
        self.action_space = action_space
        self.config = config or PlannerConfig()
        self.discrete = is_discrete(action_space)
        self.device = dynamics.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if not self.discrete:
            if not action_space.is_bounded("both"):
                raise ValueError(f"sampling planners need a Box with finite bounds, received {action_space}")
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.reset()

    def reset(self) -> None:
        """Forget the warm start (call at every episode start)."""
        raise NotImplementedError

    @torch.no_grad()
    def plan(self, obs: np.ndarray | torch.Tensor, hidden: torch.Tensor) -> np.ndarray | int:
        """Current real obs (obs_dim,) or (1, obs_dim), hidden (1, ...) of the real trajectory -> env action.

        Returns a float array (action_dim,) in the Box's dtype, or an int for a Discrete space.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if obs.dim() == 1:
            obs = obs[None]
        if tuple(obs.shape) != (1, self.dynamics.obs_dim):
            raise ValueError(
                f"plan expects one observation of shape ({self.dynamics.obs_dim},) or (1, {self.dynamics.obs_dim}), "
                f"received {tuple(obs.shape)}"
            )
        if hidden.dim() < 1 or hidden.shape[0] != 1:
            raise ValueError(
                f"plan expects the hidden state of one trajectory (1, ...), received {tuple(hidden.shape)}"
            )
        first_action = self._optimise(obs, hidden.to(self.device))
        if self.discrete:
            return int(first_action)
        return first_action.cpu().numpy().astype(self.action_space.dtype)

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Refine the plan; return its first action: (action_dim,) values, or a () index when discrete."""
        raise NotImplementedError

    def _score(self, obs: torch.Tensor, hidden: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Returns (C,) of model actions (C, H, action_dim); candidates with a non-finite return rank last.

        Raises RuntimeError when no candidate has a finite return (the dynamics diverged everywhere).
        """
        returns = rollout_returns(self.dynamics, self.reward_fn, obs, hidden, actions, self.config.discount)
        finite = torch.isfinite(returns)
        if not finite.any():
            raise RuntimeError("every candidate's predicted return is non-finite: the dynamics diverged")
        return torch.where(finite, returns, torch.full_like(returns, -torch.inf))

    def _sample_gaussian(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """C sequences from N(mean, std) (H, action_dim), clipped to the Box -> (C, H, action_dim)."""
        noise = torch.randn(
            (self.config.num_candidates, *mean.shape), generator=self.generator, device=self.device
        )
        return torch.maximum(torch.minimum(mean + std * noise, self.high), self.low)

    def _initial_std(self) -> torch.Tensor:
        half_width = (self.high - self.low) / 2
        return (self.config.init_std * half_width).expand(self.config.horizon, -1)

    def _middle(self) -> torch.Tensor:
        return ((self.low + self.high) / 2).expand(self.config.horizon, -1)


class CEMPlanner(ShootingPlanner):
    """Cross-entropy method over Gaussian (Box) or per-step categorical (Discrete) action sequences.

    Each iteration samples C sequences, keeps the top `elite_fraction` by return and refits the
    distribution on them: mean and std per step (Box), action frequencies per step (Discrete), mixed
    with the previous distribution by `momentum`. The plan's first action is the final mean (Box) or
    the most probable action (Discrete).
    """

    def reset(self) -> None:
        horizon = self.config.horizon
        if self.discrete:
            num_actions = int(self.action_space.n)
            self._probs = torch.full((horizon, num_actions), 1.0 / num_actions, device=self.device)
        else:
            self._mean = self._middle().clone()

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return self._optimise_categorical(obs, hidden)
        return self._optimise_gaussian(obs, hidden)

    def _optimise_gaussian(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        momentum = self.config.momentum
        mean, std = self._mean, self._initial_std()
        for _ in range(self.config.num_iterations):
            candidates = self._sample_gaussian(mean, std)
            returns = self._score(obs, hidden, candidates)
            elites = candidates[returns.topk(self.config.num_elites).indices]
            mean = momentum * mean + (1 - momentum) * elites.mean(0)
            std = momentum * std + (1 - momentum) * elites.std(0, correction=0)
        self._mean = torch.cat([mean[1:], self._middle()[:1]])
        return mean[0]

    def _optimise_categorical(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        momentum = self.config.momentum
        probs = self._probs
        num_actions = probs.shape[1]
        for _ in range(self.config.num_iterations):
            indices = torch.multinomial(
                probs, self.config.num_candidates, replacement=True, generator=self.generator
            ).T  # (C, H)
            candidates = one_hot_actions(indices, num_actions)
            returns = self._score(obs, hidden, candidates)
            elites = candidates[returns.topk(self.config.num_elites).indices]
            probs = momentum * probs + (1 - momentum) * elites.mean(0)
        uniform = torch.full_like(probs, 1.0 / num_actions)
        weight = self.config.warm_start_weight
        self._probs = weight * torch.cat([probs[1:], uniform[:1]]) + (1 - weight) * uniform
        return probs[0].argmax()


class MPPIPlanner(ShootingPlanner):
    """Model-predictive path integral control for Box action spaces.

    Each iteration samples C sequences around the current mean with a fixed std (`init_std` of the
    half-width) and moves the mean to their average weighted by softmax(standardised return / temperature).
    """

    supports_discrete = False

    def reset(self) -> None:
        self._mean = self._middle().clone()

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean, self._initial_std()
        for _ in range(self.config.num_iterations):
            candidates = self._sample_gaussian(mean, std)
            returns = self._score(obs, hidden, candidates)
            finite = returns[torch.isfinite(returns)]
            spread = finite.std(correction=0) if finite.numel() > 1 else returns.new_tensor(0.0)
            standardised = (returns - finite.mean()) / spread.clamp_min(1e-8)
            weights = torch.softmax(standardised / self.config.temperature, dim=0)
            mean = torch.einsum("c,cha->ha", weights, candidates)
        self._mean = torch.cat([mean[1:], self._middle()[:1]])
        return mean[0]
