"""An ensemble of world models of one architecture, stepped together with `torch.func.vmap` over its members.

    ensemble = Ensemble([SSM(...) for _ in range(5)])      # members initialised independently
    y, h = ensemble(x, ensemble.init_hidden(B))             # y (B, [T,] M * out): member m's output in block m
    y, h = ensemble(x, h, own_rows=C)                       # step mode, y (B, out): row r's own member's output

Each member keeps its own parameters (`members.<m>.<name>`), so MetaMAML, ERM and the adapter train and adapt them
all at once, every member on every window; `forward` stacks them and runs one vmapped call of the first member's
architecture. The state is every member's state side by side, (B, M * S). With one member, `forward` is that
member's own call.

A planner's imagined rows need only their own member (PETS' TS-inf: candidate c of every episode keeps member
c mod M for its whole rollout): `own_rows=C` runs each member on its own rows alone, M times less work than every
member on every row, and moves only that member's block of each row's state.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
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
        self._layouts: dict[tuple, tuple[torch.Tensor, ...]] = {}  # row_layout's, per (rows, group, device)

    @property
    def config(self) -> dict:
        """The members' constructor arguments and their count."""
        return {"members": self.size, "member": self.members[0].config}

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Every member's initial state side by side: (batch_size, M * S)."""
        return torch.cat([member.init_hidden(batch_size) for member in self.members], dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        hidden_state: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        own_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, [T,] D), hidden_state (B, M * S) -> y (B, [T,] M * out) (member-major blocks), h (B, M * S).

        `own_rows` C (step mode): row r is computed by member (r mod C) mod M alone, y (B, out) is its output and
        only its block of the row's state moves (the others are carried unchanged).
        """
        if hidden_state is None:
            hidden_state = self.init_hidden(x.shape[0])
        if self.size == 1:
            return self.members[0](x, hidden_state, reset)
        tensors = [dict(member.named_parameters()) | dict(member.named_buffers()) for member in self.members]
        stacked = {name: torch.stack([member[name] for member in tensors]) for name in tensors[0]}  # (M, ...) each
        skeleton = self._skeleton[0]

        def one_member(params, inputs, state):
            return functional_call(skeleton, params, (inputs, state), {"reset": reset})

        if own_rows is not None:
            if x.dim() != 2 or reset is not None:
                raise ValueError("own_rows runs step mode, x (B, D), without a reset")
            return self._own_rows(one_member, stacked, x, hidden_state, own_rows)
        states = hidden_state.unflatten(-1, (self.size, self.member_state_dim)).movedim(1, 0)  # (M, B, S)
        y, next_states = vmap(one_member, in_dims=(0, None, 0))(stacked, x, states)  # (M, B, [T,] out), (M, B, S)
        y = y.movedim(0, -2).flatten(-2)  # (B, [T,] M * out)
        return y, next_states.movedim(0, 1).flatten(1)

    def _own_rows(self, one_member, stacked: dict, x: torch.Tensor, hidden_state: torch.Tensor, group: int):
        """Each row through its own member alone: x (B, D), hidden_state (B, M * S) -> y (B, out), h (B, M * S)."""
        member, position, index = self.row_layout(x.shape[0], group, x.device)
        states = hidden_state.unflatten(-1, (self.size, self.member_state_dim))  # (B, M, S)
        own_states = states[index, torch.arange(self.size, device=x.device).unsqueeze(1)]  # (M, P, S)
        y, moved = vmap(one_member)(stacked, x[index], own_states)  # (M, P, out), (M, P, S)
        keep_own = F.one_hot(member, self.size).bool().unsqueeze(-1)  # (B, M, 1)
        next_states = torch.where(keep_own, moved[member, position].unsqueeze(1), states)  # (B, M, S)
        return y[member, position], next_states.flatten(1)

    def row_layout(self, rows: int, group: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Which member computes each of `rows` rows, (r mod group) mod M, as (rows,) members and (rows,) positions
        among that member's rows, and (M, P) the rows of each member (P the most any has; a shorter list repeats its
        first row, computed again and unused). Computed once per (rows, group, device): a planner asks every step."""
        key = (rows, group, device)
        if key not in self._layouts:
            self._layouts[key] = self._row_layout(rows, group, device)
        return self._layouts[key]

    def _row_layout(self, rows: int, group: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        row = torch.arange(rows, device=device)
        member = row % group % self.size  # (rows,)
        order = torch.argsort(member, stable=True)  # the rows of member 0, then of member 1, ...
        counts = torch.bincount(member, minlength=self.size)  # (M,)
        starts = torch.cumsum(counts, 0) - counts
        position = torch.empty_like(row)
        position[order] = row - starts[member[order]]
        index = order[starts.clamp(max=rows - 1)].unsqueeze(1).repeat(1, int(counts.max()))  # (M, P): first rows
        index[member, position] = row
        return member, position, index
