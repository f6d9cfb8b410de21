"""Dynamics a planner can roll out: a learned stateful world model, stepped in raw environment units.

Every dynamics object has `obs_dim`, `action_dim` (model actions: one-hot for discrete spaces),
`device`, and

    init_hidden(n)                   -> hidden (n, H)
    step(obs, action, hidden)        -> (next_obs, next_hidden)   obs (N, obs_dim), action (N, action_dim)
    observe(obs, action, hidden)     -> next_hidden               advance the state by a real transition

The hidden state is whatever the model carries from step to step (the SSM state, a GRU state); models
without one (the true physics) use an empty (n, 0) tensor.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.func import functional_call

from core.parameters import Params
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


class LearnedDynamics:
    """A stateful world model and its fitted `Normalizer`, stepped in raw units.

    `model(x, hidden) -> (y, next_hidden)` maps normalised inputs concat(obs, action) (N, D_in) to
    normalised deltas (N, obs_dim); the model needs `init_hidden(n)`. It runs through
    `torch.func.functional_call` with `params` (e.g. fast weights from `MetaMAML.adapt_task` or an
    Adapter; missing names and None mean the model's own weights).
    """

    def __init__(self, model: nn.Module, normalizer: Normalizer, params: Params | None = None) -> None:
        if not callable(getattr(model, "init_hidden", None)):
            raise ValueError(f"{type(model).__name__} has no init_hidden: LearnedDynamics needs a stateful model")
        self.model = model
        self.normalizer = normalizer
        self.obs_dim = int(normalizer.target_mean.shape[0])
        self.action_dim = int(normalizer.input_mean.shape[0]) - self.obs_dim
        if self.action_dim < 1:
            raise ValueError(
                f"normaliser inputs ({normalizer.input_mean.shape[0]}) must be wider than its targets "
                f"({self.obs_dim}): inputs are concat(obs, action)"
            )
        self.device = next(model.parameters()).device
        self._weights: Params = {}
        self.set_params(params)

    def set_params(self, params: Params | None) -> None:
        """Use `params` (detached) from now on; None restores the model's own weights."""
        own = dict(self.model.named_parameters())
        given = params or {}
        unknown = sorted(set(given) - set(own))
        if unknown:
            raise ValueError(f"params {unknown} are not parameters of {type(self.model).__name__}")
        for name, value in given.items():
            if value.shape != own[name].shape:
                raise ValueError(
                    f"param {name!r}: expected shape {tuple(own[name].shape)}, received {tuple(value.shape)}"
                )
        self._weights = {**{n: p.detach() for n, p in own.items()}, **{n: v.detach() for n, v in given.items()}}
        self._weights.update(dict(self.model.named_buffers()))

    def init_hidden(self, n: int) -> torch.Tensor:
        """The model's initial state for `n` trajectories."""
        return self.model.init_hidden(n)

    def step(
        self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (N, obs_dim), model action (N, action_dim), hidden (N, H) -> next_obs (N, obs_dim), hidden (N, H)."""
        check_step_inputs(obs, action, hidden, self.obs_dim, self.action_dim)
        x = self.normalizer.inputs(obs, action)
        y, next_hidden = functional_call(self.model, self._weights, (x, hidden))
        return obs + self.normalizer.denormalize_targets(y), next_hidden

    def observe(self, obs: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Advance the state of a real trajectory by one observed transition (the model step on real data)."""
        return self.step(obs, action, hidden)[1]
