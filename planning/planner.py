"""Sampling-based model-predictive control: CEM (Chua et al. 2018, PETS), iCEM (Pinneri et al. 2020) and MPPI
(Williams et al. 2017).

One planner acts in E episodes at once (different tasks, different weights). Every planning step samples,
for each episode, C candidate action sequences of H steps, rolls all E * C of them through the dynamics in
one batch from each episode's current real observation and the hidden state of its real trajectory, scores
each by its (discounted) sum of rewards up to a predicted termination (the task's reward function, or the
rewards the dynamics predict when it is given none, and the task's termination function), refines
the sampling distribution for a few iterations, and returns the first action of the final plan. The
rest of the plan warm-starts the next step (shifted by one). Discrete action spaces use CEM over
per-step categorical distributions and feed one-hot actions to the dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from core.settings import check_settings, integer, number, one_of, positive, setting
from env_runner.actions import action_dim, is_discrete, one_hot_actions
from env_runner.rewards import RewardFn
from env_runner.tasks import TerminationFn
from planning.dynamics import Dynamics, predicts_reward


@dataclass(frozen=True)
class PlannerConfig:
    """Sampling settings shared by the planners (the defaults are the pipeline's).

    method: which planner `make_planner` builds (`PLANNERS`).
    horizon: H steps per candidate sequence. num_candidates: C sequences per iteration.
    num_iterations: refinements of the sampling distribution per planning step.
    elite_fraction: share of the best candidates CEM refits on. discount: reward weight gamma^t.
    init_std: initial Gaussian std as a fraction of the Box half-width (Box spaces).
    momentum: weight of the previous distribution when CEM refits (PETS' alpha).
    temperature: MPPI weights are softmax(standardised return / temperature).
    warm_start_weight: discrete spaces start each planning step from this mix of the previous plan's
    (shifted) probabilities and the uniform distribution, so that collapsed probabilities explore again.
    noise_exponent, population_decay, kept_elite_fraction: iCEM's colored-noise exponent beta (power spectral
    density 1/f^beta along the horizon; 0 is white noise), the factor its population shrinks by per iteration
    and the share of elites it carries into the next iteration and, shifted, into the next planning step.
    """

    method: str = setting(
        "cem",
        "cem (cross-entropy method), icem (improved CEM: colored noise, elites kept; Box action spaces only) or "
        "mppi (Box action spaces only)",
        one_of(("cem", "icem", "mppi")),
    )
    horizon: int = setting(15, "steps H per candidate sequence", integer(1))
    # 100 candidates: on 10 Pendulum val tasks CEM on the true dynamics returned -175 with 100 and -182 with 200
    # (3 iterations, horizon 15), at half the compute
    num_candidates: int = setting(100, "candidate sequences C per iteration", integer(1))
    num_iterations: int = setting(3, "refinements of the sampling distribution per step", integer(1))
    elite_fraction: float = setting(0.1, "share of candidates CEM refits on", number(0, 1, open_low=True))
    discount: float = setting(1.0, "reward weight gamma^t", number(0, 1, open_low=True))
    init_std: float = setting(0.5, "initial std as a fraction of the Box half-width", positive())
    momentum: float = setting(0.1, "weight of the previous distribution in CEM refits", number(0, 1, open_high=True))
    temperature: float = setting(0.5, "MPPI softmax temperature", positive())
    warm_start_weight: float = setting(0.5, "discrete warm start: weight of the old plan", number(0, 1))
    # population decay 1.25 and 30% of the elites kept: Pinneri et al. (2020). The exponent was chosen on val tasks
    # (experiments/planner_choice.py, docs/selection/planner_halfcheetah_1.json): on HalfCheetah (frame skip 5,
    # horizon 15) beta 0 and 0.25 tie, and beta 1 and 2 lost a third of the true dynamics' return and half of tta's
    noise_exponent: float = setting(0.0, "iCEM colored-noise exponent beta (0: white noise)", number(0, 10))
    population_decay: float = setting(
        1.25, "iCEM: iteration i samples max(C / decay^i, 2 * elites) sequences", number(1, 10)
    )
    kept_elite_fraction: float = setting(
        0.3, "iCEM: share of the elites carried into the next iteration and the next step", number(0, 1)
    )

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def num_elites(self) -> int:
        return max(1, round(self.elite_fraction * self.num_candidates))

    @property
    def num_kept_elites(self) -> int:
        return round(self.kept_elite_fraction * self.num_elites)

    @property
    def samples_per_step(self) -> int:
        """Candidate sequences scored per planning step and episode: C per iteration (CEM, MPPI), or iCEM's shrinking
        populations, the mean in the last iteration and the kept elites in every iteration."""
        if self.method != "icem":
            return self.num_iterations * self.num_candidates
        populations = sum(self.population(i) for i in range(self.num_iterations))
        return populations + 1 + self.num_iterations * self.num_kept_elites

    def population(self, iteration: int) -> int:
        """iCEM's sample count at `iteration` (0-based): C shrunk by the decay, never below twice the elites."""
        return max(round(self.num_candidates / self.population_decay**iteration), 2 * self.num_elites)


def rollout_returns(
    dynamics: Dynamics,
    reward_fn: RewardFn | None,
    obs: torch.Tensor,
    hidden: torch.Tensor,
    actions: torch.Tensor,
    discount: float = 1.0,
    termination_fn: TerminationFn | None = None,
) -> torch.Tensor:
    """Discounted return of every candidate of E episodes: obs (E, obs_dim), hidden (E, ...), actions
    (E, C, H, action_dim) -> (E, C).

    Each episode's C candidates start from its observation and hidden state and all E * C are stepped
    together through `dynamics.step` (episode-major rows). `reward_fn` and `termination_fn` see (E, C, ·);
    `reward_fn` None scores each transition with the reward the dynamics predict (`dynamics.predict`).
    A candidate earns no reward after a transition that terminates its episode (alive mask): the reward of
    the terminating transition itself counts, as in gymnasium.
    """
    if (
        actions.dim() != 4
        or obs.dim() != 2
        or hidden.dim() < 2
        or not obs.shape[0] == hidden.shape[0] == actions.shape[0]
    ):
        raise ValueError(
            "rollout_returns expects obs (E, obs_dim), hidden (E, ...) and actions (E, C, H, action_dim), received "
            f"{tuple(obs.shape)}, {tuple(hidden.shape)} and {tuple(actions.shape)}"
        )
    episodes, candidates, horizon = actions.shape[:3]
    grid = (episodes, candidates)
    obs = obs.unsqueeze(1).expand(*grid, obs.shape[-1])
    hidden = hidden.unsqueeze(1).expand(*grid, *hidden.shape[1:]).reshape(episodes * candidates, *hidden.shape[1:])
    total = torch.zeros(grid, device=obs.device)
    alive = torch.ones(grid, dtype=torch.bool, device=obs.device)
    weight = 1.0
    for t in range(horizon):
        action = actions[:, :, t]
        flat = (obs.reshape(episodes * candidates, -1), action.reshape(episodes * candidates, -1), hidden)
        if reward_fn is None:
            next_flat, predicted, hidden = dynamics.predict(*flat)
            next_obs = next_flat.reshape(*grid, -1)
            reward = predicted.reshape(grid)
        else:
            next_flat, hidden = dynamics.step(*flat)
            next_obs = next_flat.reshape(*grid, -1)
            reward = reward_fn(obs, action, next_obs)
        total = total + weight * torch.where(alive, reward, torch.zeros_like(reward))
        if termination_fn is not None:
            alive = alive & ~termination_fn(obs, action, next_obs)
        obs, weight = next_obs, weight * discount
    return total


class ShootingPlanner:
    """Base of the planners: validation, seeding, batched scoring, warm start and env-action conversion.

    One planner plans for E episodes at once (`num_episodes`), each with its own warm start; `plan` takes
    the E current observations and hidden states and returns E actions. `reward_fn` None plans with the reward
    the dynamics predict (a learned reward; ValueError for dynamics without one).
    """

    supports_discrete = True

    def __init__(
        self,
        dynamics: Dynamics,
        reward_fn: RewardFn | None,
        action_space: spaces.Space,
        config: PlannerConfig | None = None,
        seed: int = 0,
        *,
        num_episodes: int = 1,
        termination_fn: TerminationFn | None = None,
    ) -> None:
        if action_dim(action_space) != dynamics.action_dim:
            raise ValueError(
                f"action space {action_space} has model action dim {action_dim(action_space)}, "
                f"the dynamics expect {dynamics.action_dim}"
            )
        if is_discrete(action_space) and not self.supports_discrete:
            raise ValueError(f"{type(self).__name__} needs a Box action space, received {action_space}: use CEMPlanner")
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, received {num_episodes}")
        if reward_fn is None and not predicts_reward(dynamics):
            raise ValueError(
                f"no reward function was given and {type(dynamics).__name__} does not predict the reward: "
                "pass the task's reward function or a world model trained with the reward as a target"
            )
        self.dynamics = dynamics
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.action_space = action_space
        self.config = config or PlannerConfig()
        self.num_episodes = num_episodes
        self.discrete = is_discrete(action_space)
        self.device = dynamics.device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if not self.discrete:
            if not action_space.is_bounded("both"):
                raise ValueError(f"sampling planners need a Box with finite bounds, received {action_space}")
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32, device=self.device)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32, device=self.device)
        self.clear_plans()

    def clear_plans(self, episodes: torch.Tensor | None = None) -> None:
        """Forget the warm start of the episodes in the (E,) bool mask `episodes` (None: all)."""
        raise NotImplementedError

    def _mask(self, episodes: torch.Tensor | None) -> torch.Tensor:
        if episodes is None:
            return torch.ones(self.num_episodes, dtype=torch.bool, device=self.device)
        return episodes.to(device=self.device, dtype=torch.bool)

    @torch.no_grad()
    def plan(self, obs: np.ndarray | torch.Tensor, hidden: torch.Tensor) -> np.ndarray:
        """Current real obs (E, obs_dim), hidden (E, ...) of the real trajectories -> env actions.

        Returns a float array (E, action_dim) in the Box's dtype, or an int array (E,) for a Discrete space.
        """
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        if tuple(obs.shape) != (self.num_episodes, self.dynamics.obs_dim):
            raise ValueError(
                f"plan expects observations of shape ({self.num_episodes}, {self.dynamics.obs_dim}), "
                f"received {tuple(obs.shape)}"
            )
        if hidden.dim() < 2 or hidden.shape[0] != self.num_episodes:
            raise ValueError(
                f"plan expects the hidden states of {self.num_episodes} trajectories ({self.num_episodes}, ...), "
                f"received {tuple(hidden.shape)}"
            )
        first_action = self._optimise(obs, hidden.to(self.device))
        if self.discrete:
            return first_action.cpu().numpy().astype(np.int64)
        return first_action.cpu().numpy().astype(self.action_space.dtype)

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Refine the plans; return their first actions: (E, action_dim) values, or (E,) indices when discrete."""
        raise NotImplementedError

    def _score(self, obs: torch.Tensor, hidden: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Returns (E, C) of model actions (E, C, H, action_dim); candidates with a non-finite return rank last.

        Raises RuntimeError when an episode has no candidate with a finite return (the dynamics diverged).
        """
        returns = rollout_returns(
            self.dynamics, self.reward_fn, obs, hidden, actions, self.config.discount, self.termination_fn
        )
        finite = torch.isfinite(returns)
        if not finite.any(dim=1).all():
            raise RuntimeError("every candidate's predicted return is non-finite: the dynamics diverged")
        return torch.where(finite, returns, torch.full_like(returns, -torch.inf))

    def _elites(self, candidates: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
        """The top `num_elites` of each episode's candidates: (E, C, H, A), (E, C) -> (E, K, H, A)."""
        best = returns.topk(self.config.num_elites, dim=1).indices  # (E, K)
        return torch.take_along_dim(candidates, best[:, :, None, None], dim=1)

    def _sample_gaussian(
        self, mean: torch.Tensor, std: torch.Tensor, count: int | None = None, exponent: float = 0.0
    ) -> torch.Tensor:
        """`count` (default C) sequences per episode from N(mean, std) (E, H, A), clipped to the Box -> (E, C, H, A);
        `exponent` > 0 correlates each sequence's noise over the horizon (`colored_noise`)."""
        shape = (self.num_episodes, count or self.config.num_candidates, *mean.shape[1:])
        noise = colored_noise(shape, exponent, self.generator, self.device)
        return torch.maximum(torch.minimum(mean.unsqueeze(1) + std.unsqueeze(1) * noise, self.high), self.low)

    def _initial_std(self) -> torch.Tensor:
        half_width = (self.high - self.low) / 2
        return (self.config.init_std * half_width).expand(self.num_episodes, self.config.horizon, -1)

    def _middle(self) -> torch.Tensor:
        return ((self.low + self.high) / 2).expand(self.num_episodes, self.config.horizon, -1)


def colored_noise(
    shape: tuple[int, ...], exponent: float, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard Gaussian noise of `shape` (..., H, A) whose power spectral density along H falls as 1/f^exponent.

    Exponent 0 is white noise: `torch.randn` itself. Otherwise each (sequence, action entry) gets an independent
    series from random Fourier coefficients scaled by f^(-exponent / 2) (Timmer and Koenig 1995, the lowest
    frequency 1/H standing in for 0), scaled so that every step has unit variance.
    """
    if exponent == 0:
        return torch.randn(shape, generator=generator, device=device)
    *batch, horizon, width = shape
    frequencies = torch.fft.rfftfreq(horizon, device=device).clamp_min(1.0 / horizon)  # (F,)
    scale = frequencies ** (-exponent / 2)
    coefficients = torch.randn((*batch, width, frequencies.numel(), 2), generator=generator, device=device)
    real, imaginary = coefficients.unbind(-1)  # (..., A, F)
    imaginary[..., 0] = 0  # the mean term is real, and so is the Nyquist term of an even horizon
    if horizon % 2 == 0:
        imaginary[..., -1] = 0
    series = torch.fft.irfft(torch.complex(real * scale, imaginary * scale), n=horizon)  # (..., A, H)
    # each step's variance, (1/H^2) sum_f w_f scale_f^2: a complex term enters twice (itself and its conjugate),
    # w = 4; the real mean and Nyquist terms once, w = 1
    weight = torch.full_like(scale, 4.0)
    weight[0] = 1
    if horizon % 2 == 0:
        weight[-1] = 1
    variance = (weight * scale.square()).sum() / horizon**2
    return (series / variance.sqrt()).transpose(-1, -2)


class CEMPlanner(ShootingPlanner):
    """Cross-entropy method over Gaussian (Box) or per-step categorical (Discrete) action sequences.

    Each iteration samples C sequences, keeps the top `elite_fraction` by return and refits the
    distribution on them: mean and std per step (Box), action frequencies per step (Discrete), mixed
    with the previous distribution by `momentum`. The plan's first action is the final mean (Box) or
    the most probable action (Discrete).
    """

    def clear_plans(self, episodes: torch.Tensor | None = None) -> None:
        mask = self._mask(episodes)
        if self.discrete:
            num_actions = int(self.action_space.n)
            uniform = torch.full(
                (self.num_episodes, self.config.horizon, num_actions), 1.0 / num_actions, device=self.device
            )
            self._probs = uniform if episodes is None else torch.where(mask[:, None, None], uniform, self._probs)
        else:
            middle = self._middle().clone()
            self._mean = middle if episodes is None else torch.where(mask[:, None, None], middle, self._mean)

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return self._optimise_categorical(obs, hidden)
        return self._optimise_gaussian(obs, hidden)

    def _optimise_gaussian(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        momentum = self.config.momentum
        mean, std = self._mean, self._initial_std()
        for _ in range(self.config.num_iterations):
            candidates = self._sample_gaussian(mean, std)
            elites = self._elites(candidates, self._score(obs, hidden, candidates))
            mean = momentum * mean + (1 - momentum) * elites.mean(1)
            std = momentum * std + (1 - momentum) * elites.std(1, correction=0)
        self._mean = torch.cat([mean[:, 1:], self._middle()[:, :1]], dim=1)
        return mean[:, 0]

    def _optimise_categorical(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        momentum = self.config.momentum
        probs = self._probs  # (E, H, n)
        episodes, horizon, num_actions = probs.shape
        for _ in range(self.config.num_iterations):
            indices = (
                torch.multinomial(
                    probs.reshape(episodes * horizon, num_actions),
                    self.config.num_candidates,
                    replacement=True,
                    generator=self.generator,
                )
                .reshape(episodes, horizon, -1)
                .transpose(1, 2)
            )  # (E, C, H)
            candidates = one_hot_actions(indices, num_actions)
            elites = self._elites(candidates, self._score(obs, hidden, candidates))
            probs = momentum * probs + (1 - momentum) * elites.mean(1)
        uniform = torch.full_like(probs, 1.0 / num_actions)
        weight = self.config.warm_start_weight
        self._probs = weight * torch.cat([probs[:, 1:], uniform[:, :1]], dim=1) + (1 - weight) * uniform
        return probs[:, 0].argmax(dim=-1)


class ICEMPlanner(ShootingPlanner):
    """iCEM (Pinneri et al. 2020) for Box action spaces: CEM with colored noise, a shrinking population and elites
    that survive.

    Iteration i samples `config.population(i)` sequences with colored noise (`noise_exponent`) around the mean and
    scores them together with the best `num_kept_elites` of the previous iteration's elites (in the first
    iteration: the previous planning step's, shifted by one step with the middle of the Box appended); the last
    iteration also scores the mean itself. Mean and std are refit on the elites with `momentum`, as in CEM. The
    executed action is the first of the best sequence scored in this planning step (not the mean's).
    With exponent 0, decay 1 and no kept elites, its samples are CEM's draw for draw.
    """

    supports_discrete = False

    def clear_plans(self, episodes: torch.Tensor | None = None) -> None:
        mask = self._mask(episodes)
        middle = self._middle().clone()
        kept = middle.unsqueeze(1).expand(-1, self.config.num_kept_elites, -1, -1).clone()  # (E, k, H, A)
        if episodes is None:
            self._mean, self._kept, self._has_kept = middle, kept, torch.zeros_like(mask)
            return
        self._mean = torch.where(mask[:, None, None], middle, self._mean)
        self._kept = torch.where(mask[:, None, None, None], kept, self._kept)
        self._has_kept = self._has_kept & ~mask

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        config = self.config
        mean, std = self._mean, self._initial_std()
        kept, has_kept = self._kept, self._has_kept  # a fresh episode has no elites of a previous step to reuse
        best, best_return = None, None
        for iteration in range(config.num_iterations):
            candidates = self._sample_gaussian(mean, std, config.population(iteration), config.noise_exponent)
            if iteration == config.num_iterations - 1:
                candidates = torch.cat([candidates, mean.unsqueeze(1)], dim=1)
            if kept.shape[1]:
                candidates = torch.cat([candidates, kept], dim=1)
            returns = self._score(obs, hidden, candidates)  # (E, n)
            if kept.shape[1]:
                returns[:, -kept.shape[1] :] = torch.where(has_kept[:, None], returns[:, -kept.shape[1] :], -torch.inf)
            elites = self._elites(candidates, returns)  # (E, K, H, A), best first
            round_best, round_return = elites[:, 0], returns.max(dim=1).values
            if best is None:
                best, best_return = round_best, round_return
            else:
                better = round_return > best_return
                best = torch.where(better[:, None, None], round_best, best)
                best_return = torch.maximum(best_return, round_return)
            mean = config.momentum * mean + (1 - config.momentum) * elites.mean(1)
            std = config.momentum * std + (1 - config.momentum) * elites.std(1, correction=0)
            kept, has_kept = elites[:, : config.num_kept_elites], torch.ones_like(has_kept)
        middle = self._middle()[:, :1]
        self._mean = torch.cat([mean[:, 1:], middle], dim=1)
        self._kept = torch.cat([kept[:, :, 1:], middle.unsqueeze(1).expand(-1, kept.shape[1], -1, -1)], dim=2)
        self._has_kept = has_kept
        return best[:, 0]


class MPPIPlanner(ShootingPlanner):
    """Model-predictive path integral control for Box action spaces.

    Each iteration samples C sequences around the current mean with a fixed std (`init_std` of the
    half-width) and moves the mean to their average weighted by softmax(standardised return / temperature).
    """

    supports_discrete = False

    def clear_plans(self, episodes: torch.Tensor | None = None) -> None:
        middle = self._middle().clone()
        self._mean = (
            middle if episodes is None else torch.where(self._mask(episodes)[:, None, None], middle, self._mean)
        )

    def _optimise(self, obs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        mean, std = self._mean, self._initial_std()
        for _ in range(self.config.num_iterations):
            candidates = self._sample_gaussian(mean, std)
            returns = self._score(obs, hidden, candidates)  # (E, C)
            finite = torch.isfinite(returns)
            count = finite.sum(1, keepdim=True).clamp_min(1)
            zeroed = torch.where(finite, returns, torch.zeros_like(returns))
            average = zeroed.sum(1, keepdim=True) / count
            spread = (
                torch.where(finite, returns - average, torch.zeros_like(returns)).square().sum(1, keepdim=True) / count
            ).sqrt()
            standardised = (returns - average) / spread.clamp_min(1e-8)
            weights = torch.softmax(standardised / self.config.temperature, dim=1)
            mean = torch.einsum("ec,echa->eha", weights, candidates)
        self._mean = torch.cat([mean[:, 1:], self._middle()[:, :1]], dim=1)
        return mean[:, 0]


PLANNERS: dict[str, type[ShootingPlanner]] = {"cem": CEMPlanner, "icem": ICEMPlanner, "mppi": MPPIPlanner}


def make_planner(
    dynamics: Dynamics,
    reward_fn: RewardFn | None,
    action_space: spaces.Space,
    config: PlannerConfig,
    seed: int = 0,
    *,
    num_episodes: int = 1,
    termination_fn: TerminationFn | None = None,
) -> ShootingPlanner:
    """The planner `config.method` names, over `dynamics`, for `num_episodes` episodes at once."""
    planner = PLANNERS[config.method]
    return planner(
        dynamics, reward_fn, action_space, config, seed, num_episodes=num_episodes, termination_fn=termination_fn
    )
