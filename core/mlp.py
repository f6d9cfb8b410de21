"""A feed-forward world model on the current input alone (GrBAL's, Nagabandi et al. 2019), with the stateful
models' calling convention so that MetaMAML, the adapter and the planner take it unchanged.

    y_t = W_out silu(W_2 silu(W_1 silu(W_in x_t)))          (three hidden layers of hidden_dim, as GrBAL's)

Its state is empty, (B, 0): `forward(x, h, reset)` returns it unchanged and `reset` changes nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.recurrence import check_model_inputs


class MLPModel(nn.Module):
    """Three hidden layers, no memory: `forward(x, h, reset) -> (y, h)` with h of shape (B, 0)."""

    state_dim = 0

    def __init__(
        self, input_dim: int, output_dim: int, hidden_dim: int = 128, device: str | torch.device | None = None
    ) -> None:
        super().__init__()
        self.input_dim, self.output_dim, self.hidden_dim = input_dim, output_dim, hidden_dim
        self.in_proj = nn.Linear(input_dim, hidden_dim)
        self.hidden = nn.ModuleList([nn.Linear(hidden_dim, hidden_dim) for _ in range(2)])
        self.out_proj = nn.Linear(hidden_dim, output_dim)
        if device is not None:
            self.to(device)

    @property
    def config(self) -> dict:
        """Constructor arguments, enough to rebuild the model from a state dict."""
        return {"input_dim": self.input_dim, "output_dim": self.output_dim, "hidden_dim": self.hidden_dim}

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """The empty state (batch_size, 0)."""
        weight = self.out_proj.weight
        return torch.zeros(batch_size, 0, device=weight.device, dtype=weight.dtype)

    def forward(
        self, x: torch.Tensor, hidden_state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, input_dim) or (B, T, input_dim) -> y (B, [T,] output_dim) and the empty state (B, 0)."""
        check_model_inputs("MLPModel", x, hidden_state, reset, self.input_dim, 0, self.out_proj.weight)
        u = F.silu(self.in_proj(x))
        for layer in self.hidden:
            u = F.silu(layer(u))
        return self.out_proj(u), self.init_hidden(x.shape[0]) if hidden_state is None else hidden_state
