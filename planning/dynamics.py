"""Dynamics a planner can roll out: a learned stateful world model, stepped in raw environment units.

Every dynamics object has `obs_dim`, `action_dim` (model actions: one-hot for discrete spaces),
`device`, and

    init_hidden(n)                   -> hidden (n, H)
    step(obs, action, hidden)        -> (next_obs, next_hidden)   obs (N, obs_dim), action (N, action_dim)
    observe(obs, action, hidden)     -> next_hidden               advance the state by a real transition

The hidden state is whatever the model carries from step to step (the SSM state, a GRU state); models
without one (the true physics) use an empty (n, 0) tensor.

Dynamics that also predict the reward (`predicts_reward` True: a world model trained with the reward as a
target) add

    predict(obs, action, hidden)     -> (next_obs, reward, next_hidden)   reward (N,)

which a planner given no reward function scores imagined trajectories with.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.func import functional_call, vmap

from core.heads import OutputHead
from core.parameters import Params, is_stateful
from env_runner.segments import Normalizer


class Dynamics(Protocol):
    """What planners and `run_episode` need from a dynamics model (see the module docstring)."""

    obs_dim: int
    action_dim: int
    device: torch.device

    def init_hidden(self, n: int) -> torch.Tensor: ...

    def step(
        self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def observe(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor: ...


def predicts_reward(dynamics: Dynamics) -> bool:
    """Whether `dynamics` has `predict`, returning the reward of each transition beside the next observation."""
    return bool(getattr(dynamics, "predicts_reward", False))


def check_step_inputs(
    obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor, obs_dim: int, action_dim: int
) -> None:
    """Raise ValueError unless obs is (N, obs_dim), action (N, action_dim) and hidden (N, ...)."""
    if obs.dim() != 2 or obs.shape[1] != obs_dim:
        raise ValueError(f"expected obs of shape (N, {obs_dim}), received {tuple(obs.shape)}")
    batch = obs.shape[0]
    if tuple(action.shape) != (batch, action_dim):
        raise ValueError(
            f"expected model actions of shape ({batch}, {action_dim}) (one-hot for discrete spaces), "
            f"received {tuple(action.shape)}"
        )
    if hidden.dim() < 1 or hidden.shape[0] != batch:
        raise ValueError(f"expected a hidden state of batch {batch}, received shape {tuple(hidden.shape)}")


INPUT_LIMIT = 1000.0  # normalised model inputs are clamped to +-1000 training standard deviations


class LearnedDynamics:
    """A stateful world model and its fitted `Normalizer`, stepped in raw units, for E episodes at once.

    `model(x, hidden) -> (y, next_hidden)` maps normalised inputs concat(obs, action[, context]) (N, D_in) to
    normalised deltas (N, obs_dim); the model needs `init_hidden(n)`. Batches are episode-major: N = E * C
    rows, C per episode (C = 1 for the real trajectories, the candidate count inside a planner).

    Weights: the model's own, or `set_params(params)` with either one set shared by every episode or a
    stacked set (every tensor with a leading E dimension: one adapted set per episode, run with
    `torch.func.vmap` over episodes). `context` (E, K) is appended to every input of its episode (the
    oracle's task coefficients); None for models that take (obs, action) only. Where the normaliser's targets
    include the reward (`predicts_reward`), the model's last output is the normalised reward and `predict`
    returns it. `head` says what the outputs are (`core.heads.OutputHead`; default: the targets themselves): the
    model of an ensemble head is a `core.ensemble.Ensemble`, whose imagined rows each run their own member alone
    (candidate c of every episode member c mod M, `own_rows`), and a Gaussian head's are sampled (from a generator
    seeded with `seed`). `observe` moves every member's state: the real trajectory's is where each candidate starts.

    Normalised inputs are clamped to +-`INPUT_LIMIT` (1000 standard deviations of the training data, far
    beyond any real state: an upright pendulum is 24 from the random-policy data): an imagined trajectory that
    runs away from everything the model was trained on then stays finite (the SSM's state and outputs are
    bounded for bounded inputs), instead of overflowing and leaving the planner without a finite candidate.
    """

    def __init__(
        self,
        model: nn.Module,
        normalizer: Normalizer,
        num_episodes: int = 1,
        context: torch.Tensor | None = None,
        head: OutputHead | None = None,
        seed: int = 0,
    ) -> None:
        if not is_stateful(model):
            raise ValueError(f"{type(model).__name__} has no init_hidden: LearnedDynamics needs a stateful model")
        self.model = model
        self.normalizer = normalizer
        self.num_episodes = num_episodes
        self.obs_dim, self.action_dim = normalizer.obs_dim, normalizer.action_dim
        self.predicts_reward = normalizer.predicts_reward
        self.device = next(model.parameters()).device
        if context is not None and (context.dim() != 2 or context.shape[0] != num_episodes):
            raise ValueError(f"context must be ({num_episodes}, K), one row per episode, got {tuple(context.shape)}")
        self.context = context
        self.head = head if head is not None else OutputHead(normalizer.target_dim)
        if self.head.members > 1 and getattr(model, "size", None) != self.head.members:
            raise ValueError(f"a head of {self.head.members} members needs an Ensemble of as many, got {model!r}")
        self.generator = torch.Generator(device=self.device).manual_seed(seed)  # a Gaussian head's samples
        self._weights: Params = {}
        self._stacked = False
        self.set_params(None)

    def set_params(self, params: Params | None, stacked: bool = False) -> None:
        """Use `params` (detached; missing names keep the model's own) from now on; None: the model's own.

        `stacked`: every tensor of `params` has a leading dimension E, one set per episode.
        """
        own = dict(self.model.named_parameters())
        given = params or {}
        unknown = sorted(set(given) - set(own))
        if unknown:
            raise ValueError(f"params {unknown} are not parameters of {type(self.model).__name__}")
        lead = (self.num_episodes,) if stacked else ()
        for name, value in given.items():
            expected = (*lead, *own[name].shape)
            if tuple(value.shape) != expected:
                raise ValueError(f"param {name!r}: expected shape {expected}, received {tuple(value.shape)}")
        weights = {n: p.detach().expand(*lead, *p.shape) for n, p in own.items()}
        weights.update({n: v.detach() for n, v in given.items()})
        self._weights = weights
        self._stacked = stacked
        self._own_weights = not given and not stacked  # the model's own parameters: called directly
        self._buffers = dict(self.model.named_buffers())

    def init_hidden(self, n: int) -> torch.Tensor:
        """The model's initial state for `n` trajectories."""
        return self.model.init_hidden(n)

    def step(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, obs_dim), model action (N, action_dim), hidden (N, H) -> next_obs (N, obs_dim), hidden (N, H)."""
        next_obs, _, next_hidden = self._forward(obs, action, hidden)
        return next_obs, next_hidden

    def predict(
        self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`step` with the predicted reward: -> next_obs (N, obs_dim), reward (N,), hidden (N, H).

        ValueError for a model whose targets do not include the reward.
        """
        if not self.predicts_reward:
            raise ValueError("this world model was not trained to predict the reward: its targets are deltas only")
        return self._forward(obs, action, hidden)

    def _forward(
        self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        x = self._inputs(obs, action, hidden)
        own_rows = {"own_rows": obs.shape[0] // self.num_episodes} if self.head.members > 1 else {}
        output, next_hidden = self._call(x, hidden, own_rows)  # output: the row's own member's, if an ensemble
        y = self.head.draw(output, self.generator)  # (N, D_out): with a Gaussian head's noise, else the output
        target = self.normalizer.denormalize_targets(y)  # (N, D_out): the delta, then the reward where predicted
        reward = target[:, self.obs_dim] if self.predicts_reward else None
        return obs + target[:, : self.obs_dim], reward, next_hidden

    def _inputs(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Checked raw obs (N, obs_dim) and model actions -> clamped normalised inputs (N, D_in), context appended."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        if obs.shape[0] % self.num_episodes:
            raise ValueError(f"a batch of {obs.shape[0]} rows does not split into {self.num_episodes} episodes")
        x = self.normalizer.inputs(obs, action).clamp(-INPUT_LIMIT, INPUT_LIMIT)
        if self.context is not None:
            per_episode = obs.shape[0] // self.num_episodes
            x = torch.cat([x, self.context.repeat_interleave(per_episode, dim=0)], dim=-1)
        return x

    def observe(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Advance the state of a real trajectory by one observed transition (the model step on real data; every
        member's state, for an ensemble)."""
        return self._call(self._inputs(obs, action, hidden), hidden)[1]

    def _call(self, x: torch.Tensor, hidden: torch.Tensor, options: dict | None = None) -> tuple[torch.Tensor, ...]:
        """Normalised inputs (N, D_in), hidden (N, H) -> outputs under the current weights (`options`: the model's
        keyword arguments)."""
        options = options or {}
        if self._own_weights and not torch.is_grad_enabled():
            return self.model(x, hidden, **options)
        if not self._stacked:
            return functional_call(self.model, (self._weights, self._buffers), (x, hidden), options)
        episodes = self.num_episodes

        def one_episode(weights: Params, x_e: torch.Tensor, hidden_e: torch.Tensor):
            return functional_call(self.model, (weights, self._buffers), (x_e, hidden_e), options)

        rows = x.shape[0] // episodes  # an empty state (B, 0) has no size to infer -1 from
        y, next_hidden = vmap(one_episode)(
            self._weights, x.reshape(episodes, rows, x.shape[-1]), hidden.reshape(episodes, rows, hidden.shape[-1])
        )
        return y.flatten(0, 1), next_hidden.flatten(0, 1)
