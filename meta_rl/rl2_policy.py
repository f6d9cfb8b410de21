"""The RL² actor-critic: a recurrent policy whose memory is the SSM or a GRU, behind one interface.

Per step t of a trial (I = obs_dim + action_dim + 2 inputs, H = hidden_dim):

    x_t        = [o_t, a_{t-1}, r_{t-1}, d_t]                  (I)   d_t = 1 at an episode's first step
    e_t        = tanh(W_e x_t)                                 (H)
    m_t, h_t   = memory(e_t, h_{t-1})                          (H), (state)   h_{-1} = 0 at a trial start
    f_t        = [m_t, e_t]                                    (2H)
    pi(.|f_t)  = N(mu(f_t), diag(exp(2 log_std)))              Box: a Gaussian over [-1, 1]-scaled actions
               | Categorical(softmax(l(f_t)))                  Discrete
    V_t        = v(f_t)                                        ()

At a trial's first step a_{-1} = 0 and r_{-1} = 0. Inside a trial the previous action and reward and the
memory all carry across episode ends; only a new trial resets the memory. Box actions are sampled
unclipped in unit space, then clipped to [-1, 1] and scaled onto the bounds to act (the clipped unit
action is what the next step reads as a_{t-1}); Discrete actions are read back as one-hot vectors.

Step mode: x (B, I), state (B, S) -> distribution over (B,) actions, value (B,), next state (B, S).
Sequence mode: x (B, T, I) -> distribution over (B, T) actions, value (B, T), state after the last step;
`reset` (B, T) zeroes the memory before x_t (the SSM's reset mask; the GRU splits the sequence there).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from core.ssm import SSM
from env_runner.actions import action_dim, is_discrete, one_hot_actions, unit_to_env_action

MEMORIES = ("ssm", "ssm_complex", "gru")  # ssm_complex: the SSM with complex eigenvalues (core.ssm)


class GRUMemory(nn.Module):
    """`nn.GRU` with the SSM's calling convention: `forward(x, h, reset) -> (y, h_next)`, state (B, H)."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.state_dim = hidden_dim
        self.gru = nn.GRU(input_dim, hidden_dim, batch_first=True)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.state_dim, device=self.gru.weight_hh_l0.device)

    def forward(
        self, x: torch.Tensor, hidden_state: torch.Tensor, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step (B, D) or sequence (B, T, D); the sequence is cut where any row resets, one nn.GRU call per piece."""
        if x.dim() == 2:
            y, next_hidden = self(x.unsqueeze(1), hidden_state, None if reset is None else reset.unsqueeze(1))
            return y.squeeze(1), next_hidden
        steps = x.shape[1]
        cuts = [] if reset is None else (torch.nonzero(reset[:, 1:].any(0)).flatten() + 1).tolist()
        hidden, outputs = hidden_state, []
        for start, end in zip([0, *cuts], [*cuts, steps], strict=True):
            if reset is not None:
                hidden = hidden * (1.0 - reset[:, start].to(hidden.dtype)).unsqueeze(-1)
            y, last = self.gru(x[:, start:end], hidden.unsqueeze(0))  # y (B, end - start, H), last (1, B, H)
            hidden = last.squeeze(0)
            outputs.append(y)
        return torch.cat(outputs, 1), hidden


def layer_init(layer: nn.Linear, std: float = math.sqrt(2.0)) -> nn.Linear:
    """Orthogonal weights with gain `std` and zero bias (the usual PPO initialisation)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


def policy_inputs(
    obs: torch.Tensor, prev_action: torch.Tensor, prev_reward: torch.Tensor, episode_start: torch.Tensor
) -> torch.Tensor:
    """x_t = [o_t, a_{t-1}, r_{t-1}, d_t]: (..., obs_dim), (..., A), (...,), (...,) -> (..., obs_dim + A + 2)."""
    flags = torch.stack([prev_reward.float(), episode_start.float()], dim=-1)
    return torch.cat([obs.float(), prev_action.float(), flags], dim=-1)


class RecurrentActorCritic(nn.Module):
    """Actor-critic with a recurrent memory (`memory` one of MEMORIES: the SSM with real or complex eigenvalues, or a
    GRU); everything else identical."""

    def __init__(self, obs_dim: int, action_space: spaces.Space, memory: str = "ssm", hidden_dim: int = 64) -> None:
        super().__init__()
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")
        self.obs_dim = obs_dim
        self.action_space = action_space
        self.discrete = is_discrete(action_space)
        self.action_dim = action_dim(action_space)
        self.input_dim = obs_dim + self.action_dim + 2
        self.encoder = layer_init(nn.Linear(self.input_dim, hidden_dim))
        if memory in ("ssm", "ssm_complex"):
            eigenvalues = "complex" if memory == "ssm_complex" else "real"
            self.memory = SSM(hidden_dim, hidden_dim, hidden_dim, hidden_dim, eigenvalues=eigenvalues)
        else:
            self.memory = GRUMemory(hidden_dim, hidden_dim)
        self.actor = nn.Sequential(
            layer_init(nn.Linear(2 * hidden_dim, hidden_dim)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_dim, self.action_dim), std=0.01),
        )
        self.critic = nn.Sequential(
            layer_init(nn.Linear(2 * hidden_dim, hidden_dim)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden_dim, 1), std=1.0),
        )
        self.log_std = None if self.discrete else nn.Parameter(torch.zeros(self.action_dim))

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """The memory's state at a trial start, (B, S) zeros."""
        return self.memory.init_hidden(batch_size)

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[Distribution, torch.Tensor, torch.Tensor]:
        """inputs (B, I) or (B, T, I), state (B, S) (None: a trial start) -> (policy, value (B,) | (B, T), state)."""
        if state is None:
            state = self.initial_state(inputs.shape[0])
        encoded = torch.tanh(self.encoder(inputs))  # (..., H)
        memory_out, next_state = self.memory(encoded, state, reset)  # (..., H), (B, S)
        features = torch.cat([memory_out, encoded], dim=-1)  # (..., 2H)
        value = self.critic(features).squeeze(-1)
        if self.discrete:
            return Categorical(logits=self.actor(features), validate_args=False), value, next_state
        mean = self.actor(features)  # (..., A)
        std = self.log_std.exp().expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False), value, next_state


def sample_action(policy: Distribution, generator: torch.Generator) -> torch.Tensor:
    """One action per row from `policy`, drawn with `generator`: (B,) int64 or (B, A) unit-space floats."""
    if isinstance(policy, Categorical):
        return torch.multinomial(policy.probs, 1, generator=generator).squeeze(-1)
    normal = policy.base_dist
    return normal.loc + normal.scale * torch.randn(normal.loc.shape, generator=generator, dtype=normal.loc.dtype)


def act(action: torch.Tensor, space: spaces.Space) -> tuple[np.ndarray, torch.Tensor]:
    """A sampled action -> (env actions for `envs.step`, the a_t the next policy input reads (B, A)).

    Box: clipped to [-1, 1], then scaled onto the bounds. Discrete: the index, read back one-hot.
    """
    if is_discrete(space):
        return unit_to_env_action(action, space), one_hot_actions(action, int(space.n))
    unit = action.clamp(-1.0, 1.0)
    return unit_to_env_action(unit, space), unit
