"""A GRU world model with the SSM's calling convention: `forward(x, h, reset) -> (y, h_next)` on (B, D) steps or
(B, T, D) sequences (ReBAL's recurrent model, Nagabandi et al. 2019).

Per time step t (N = state_dim), PyTorch's `nn.GRU` equations written out so that torch.func (functional_call,
vmap, grad of grad) runs through them:

    h       = (1 - reset_t) * h_{t-1}
    r, z    = sigmoid(W_ir x_t + W_hr h + b_r), sigmoid(W_iz x_t + W_hz h + b_z)
    n       = tanh(W_in x_t + b_in + r * (W_hn h + b_hn))
    h_t     = (1 - z) * n + z * h
    y_t     = W_out h_t

Sequence mode projects every input at once and loops over t for the recurrent part.
"""

from __future__ import annotations

import torch
from torch import nn

from core.recurrence import check_model_inputs


class GRUModel(nn.Module):
    """GRU state, linear readout: `forward(x, h, reset) -> (y, h_next)`."""

    def __init__(
        self, state_dim: int, input_dim: int, output_dim: int, device: str | torch.device | None = None
    ) -> None:
        super().__init__()
        self.state_dim, self.input_dim, self.output_dim = state_dim, input_dim, output_dim
        self.in_proj = nn.Linear(input_dim, 3 * state_dim)  # the input's share of r, z, n
        self.hidden_proj = nn.Linear(state_dim, 3 * state_dim)  # the state's share of r, z, n
        self.out_proj = nn.Linear(state_dim, output_dim)
        if device is not None:
            self.to(device)

    @property
    def config(self) -> dict:
        """Constructor arguments, enough to rebuild the model from a state dict."""
        return {"state_dim": self.state_dim, "input_dim": self.input_dim, "output_dim": self.output_dim}

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero state (batch_size, state_dim) on the model's device."""
        weight = self.out_proj.weight
        return torch.zeros(batch_size, self.state_dim, device=weight.device, dtype=weight.dtype)

    def forward(
        self, x: torch.Tensor, hidden_state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step mode: x (B, input_dim), hidden_state (B, state_dim), reset (B,) -> y (B, output_dim), h (B, state_dim).

        Sequence mode: x (B, T, input_dim), reset (B, T) -> y (B, T, output_dim), h after the last step.
        `reset[..., t] = 1` zeroes the state before x_t is consumed. `hidden_state=None` starts from zeros.
        """
        check_model_inputs("GRUModel", x, hidden_state, reset, self.input_dim, self.state_dim, self.out_proj.weight)
        h = self.init_hidden(x.shape[0]) if hidden_state is None else hidden_state
        projected = self.in_proj(x)  # (B, [T,] 3N)
        if x.dim() == 2:
            h = self._cell(projected, h, None if reset is None else reset)
            return self.out_proj(h), h
        states = []
        for t in range(x.shape[1]):
            h = self._cell(projected[:, t], h, None if reset is None else reset[:, t])
            states.append(h)
        states = torch.stack(states, dim=1)  # (B, T, N)
        return self.out_proj(states), h

    def _cell(self, projected: torch.Tensor, h: torch.Tensor, reset: torch.Tensor | None) -> torch.Tensor:
        """One step from the projected input (B, 3N) and the state (B, N) -> the next state (B, N)."""
        if reset is not None:
            h = h * (1.0 - reset.to(h.dtype)).unsqueeze(-1)
        input_r, input_z, input_n = projected.chunk(3, dim=-1)
        hidden_r, hidden_z, hidden_n = self.hidden_proj(h).chunk(3, dim=-1)
        r = torch.sigmoid(input_r + hidden_r)
        z = torch.sigmoid(input_z + hidden_z)
        n = torch.tanh(input_n + r * hidden_n)
        return n + z * (h - n)
