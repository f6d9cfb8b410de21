"""What the world models (`core.ssm.SSM`, `core.gru.GRUModel`, `core.mlp.MLPModel`) accept: one check, one set of
messages.

    forward(x, hidden_state, reset) -> (y, next_hidden)
        step mode      x (B, D), hidden_state (B, N), reset (B,)
        sequence mode  x (B, T, D), hidden_state (B, N), reset (B, T)
"""

from __future__ import annotations

import torch

from core.torch_internals import outside_torch_func_transforms


def check_model_inputs(
    model: str,
    x: torch.Tensor,
    hidden_state: torch.Tensor | None,
    reset: torch.Tensor | None,
    input_dim: int,
    state_dim: int,
    weight: torch.Tensor,
) -> None:
    """ValueError (TypeError for a non-tensor) naming what `model`'s forward expected and what it got; `weight`: one
    of its parameters (their dtype is the inputs' dtype)."""
    for name, value in (("x", x), ("hidden_state", hidden_state), ("reset", reset)):
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(f"{model} expects {name} as a torch.Tensor, got {type(value).__name__}")
    dtype = weight.dtype
    if x.dtype != dtype:
        raise ValueError(
            f"{model} expects x of dtype {dtype} (its parameters' dtype), got {x.dtype}: convert x, or the model "
            "with model.to(dtype)"
        )
    if x.dim() not in (2, 3) or x.shape[-1] != input_dim:
        raise ValueError(
            f"{model} expects x of shape (B, {input_dim}) (one step of B sequences) or (B, T, {input_dim}) "
            f"(B sequences of T steps), got {tuple(x.shape)}"
        )
    if x.dim() == 3 and x.shape[1] == 0:
        raise ValueError(f"{model} got an empty sequence, x shape {tuple(x.shape)}")
    batch = x.shape[0]
    if hidden_state is not None:
        if tuple(hidden_state.shape) != (batch, state_dim):
            read_as = f"x {tuple(x.shape)} is " + (
                f"one step of {batch} sequences" if x.dim() == 2 else f"{batch} sequences of {x.shape[1]} steps"
            )
            raise ValueError(
                f"{model} expects hidden_state of shape ({batch}, {state_dim}), got {tuple(hidden_state.shape)} "
                f"({read_as}; a single sequence of T steps is x[None], shape (1, T, {input_dim}))"
            )
        state_dtypes = {dtype, torch.promote_types(dtype, torch.float32)}
        if hidden_state.dtype not in state_dtypes:
            raise ValueError(
                f"{model} expects hidden_state of dtype {' or '.join(map(str, state_dtypes))}, got {hidden_state.dtype}"
            )
    if reset is not None:
        if tuple(reset.shape) != tuple(x.shape[:-1]):
            raise ValueError(
                f"{model} expects reset of shape {tuple(x.shape[:-1])} (one flag per step), got {tuple(reset.shape)}"
            )
        if reset.dtype != torch.bool and outside_torch_func_transforms() and not ((reset == 0) | (reset == 1)).all():
            raise ValueError(f"{model} expects reset as bools or 0/1 flags, got other values")
