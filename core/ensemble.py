"""An ensemble of world models of one architecture, stepped together with `torch.func.vmap` over its members.

    ensemble = Ensemble([SSM(...) for _ in range(5)])      # members initialised independently
    y, h = ensemble(x, ensemble.init_hidden(B))             # y (B, [T,] M * out): member m's output in block m

Each member keeps its own parameters (`members.<m>.<name>`), so MetaMAML, ERM and the adapter train and adapt them
all at once, every member on every window; `forward` stacks them and runs one vmapped call of the first member's
architecture. The state is every member's state side by side, (B, M * S). With one member, `forward` is that
member's own call.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap


class Ensemble(nn.Module):
    """M members with the stateful models' calling convention: `forward(x, h, reset) -> (y, h_next)`."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an Ensemble needs at least one member")
        kinds = {(type(member), repr(member.config)) for member in members}
        if len(kinds) != 1:
            raise ValueError("every member of an Ensemble must have the same architecture and sizes")
        self.members = nn.ModuleList(members)
        self.size = len(members)
        self.member_state_dim = members[0].state_dim
        self.state_dim = self.size * self.member_state_dim
        self.output_dim = self.size * members[0].output_dim
        self.input_dim = members[0].input_dim
        self._skeleton = [copy.deepcopy(members[0]).to("meta")]  # the architecture, outside the module's parameters

    @property
    def config(self) -> dict:
        """The members' constructor arguments and their count."""
        return {"members": self.size, "member": self.members[0].config}

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Every member's initial state side by side: (batch_size, M * S)."""
        return torch.cat([member.init_hidden(batch_size) for member in self.members], dim=-1)

    def forward(
        self, x: torch.Tensor, hidden_state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, [T,] D), hidden_state (B, M * S) -> y (B, [T,] M * out) (member-major blocks), h (B, M * S)."""
        if hidden_state is None:
            hidden_state = self.init_hidden(x.shape[0])
        if self.size == 1:
            return self.members[0](x, hidden_state, reset)
        tensors = [dict(member.named_parameters()) | dict(member.named_buffers()) for member in self.members]
        stacked = {name: torch.stack([member[name] for member in tensors]) for name in tensors[0]}  # (M, ...) each
        states = hidden_state.unflatten(-1, (self.size, self.member_state_dim)).movedim(1, 0)  # (M, B, S)
        skeleton = self._skeleton[0]

        def one_member(params, state):
            return functional_call(skeleton, params, (x, state), {"reset": reset})

        y, next_states = vmap(one_member)(stacked, states)  # (M, B, [T,] out), (M, B, S)
        y = y.movedim(0, -2).flatten(-2)  # (B, [T,] M * out)
        return y, next_states.movedim(0, 1).flatten(1)
