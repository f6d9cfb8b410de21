"""Action conventions shared by environments, collectors, models and planners.

Two representations of an action:
- env action: what `env.step` takes. Box spaces: float values inside the bounds, shape (action_dim,).
  Discrete spaces: an integer in [0, n), shape ().
- model action: what models consume, float32 of shape (..., action_dim). Box spaces: the env action
  itself. Discrete spaces: the one-hot encoding, so `action_dim` is the number of actions.

Policies that output values in [-1, 1] map them to Box bounds with `scale_action` (and back with
`unscale_action`).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces


def check_action_space(space: spaces.Space) -> None:
    """Raise ValueError unless `space` is a 1-D Box or a Discrete space (the supported kinds)."""
    if isinstance(space, spaces.Discrete):
        return
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return
    raise ValueError(f"unsupported action space {space}: expected a 1-D Box or a Discrete space")


def is_discrete(space: spaces.Space) -> bool:
    """True for a Discrete action space, False for a 1-D Box; ValueError for anything else."""
    check_action_space(space)
    return isinstance(space, spaces.Discrete)


def action_dim(space: spaces.Space) -> int:
    """Width of a model action: the Box dimension, or the number of actions of a Discrete space."""
    return int(space.n) if is_discrete(space) else int(space.shape[0])


def env_action_shape(space: spaces.Space, batch_size: int | None = None) -> tuple[int, ...]:
    """Shape `env.step` expects: () or (action_dim,) unbatched, (B,) or (B, action_dim) batched."""
    single = () if is_discrete(space) else tuple(space.shape)
    return single if batch_size is None else (batch_size, *single)


def as_env_action(
    action: np.ndarray | torch.Tensor | float | int, space: spaces.Space, batch_size: int | None = None
) -> np.ndarray:
    """Validate an env action (single, or batched with `batch_size`) and return it as a numpy array.

    Discrete actions must be integers; Box actions are cast to the space's dtype. Raises ValueError
    naming the expected and received shapes on a mismatch.
    """
    array = action.detach().cpu().numpy() if isinstance(action, torch.Tensor) else np.asarray(action)
    expected = env_action_shape(space, batch_size)
    if array.shape != expected:
        raise ValueError(f"expected an action of shape {expected} for {space}, received shape {array.shape}")
    if is_discrete(space):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"discrete actions must be integers, received dtype {array.dtype}")
        return array.astype(np.int64, copy=False)
    return array.astype(space.dtype, copy=False)


def one_hot_actions(actions: torch.Tensor, num_actions: int) -> torch.Tensor:
    """Integer actions (...,) -> float32 one-hot vectors (..., num_actions)."""
    return torch.nn.functional.one_hot(actions.long(), num_actions).float()


def to_model_action(env_actions: np.ndarray | torch.Tensor, space: spaces.Space) -> torch.Tensor:
    """Env actions (...,) for Discrete or (..., action_dim) for Box -> float32 (..., action_dim)."""
    actions = torch.as_tensor(env_actions)
    if is_discrete(space):
        return one_hot_actions(actions, int(space.n))
    return actions.float()


def to_env_action(model_actions: torch.Tensor, space: spaces.Space) -> np.ndarray:
    """Model actions (..., action_dim) -> env actions: argmax indices for Discrete, values for Box."""
    if is_discrete(space):
        return model_actions.argmax(dim=-1).cpu().numpy().astype(np.int64)
    return model_actions.detach().cpu().numpy().astype(space.dtype)


def _finite_bounds(space: spaces.Box) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(space, spaces.Box) or not space.is_bounded("both"):
        raise ValueError(f"scaling needs a Box action space with finite bounds, received {space}")
    return torch.as_tensor(space.low, dtype=torch.float32), torch.as_tensor(space.high, dtype=torch.float32)


def scale_action(unit_action: torch.Tensor, space: spaces.Box) -> torch.Tensor:
    """Map values in [-1, 1] (..., action_dim) linearly onto the Box bounds [low, high]."""
    low, high = (bound.to(unit_action.device) for bound in _finite_bounds(space))
    return low + (unit_action + 1.0) * 0.5 * (high - low)


def unscale_action(action: torch.Tensor, space: spaces.Box) -> torch.Tensor:
    """Inverse of `scale_action`: Box values (..., action_dim) -> [-1, 1]."""
    low, high = (bound.to(action.device) for bound in _finite_bounds(space))
    return 2.0 * (action - low) / (high - low) - 1.0


def uniform_action(space: spaces.Space, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Uniformly random actions in the unit representation: (B,) int64 indices or (B, A) values in [-1, 1]."""
    if is_discrete(space):
        return torch.randint(int(space.n), (batch_size,), generator=generator)
    return torch.rand(batch_size, action_dim(space), generator=generator) * 2.0 - 1.0


def unit_to_env_action(action: torch.Tensor, space: spaces.Space) -> np.ndarray:
    """Unit-representation actions -> env actions: indices (B,) int64 as they are, values in [-1, 1] (B, A) scaled
    onto the Box bounds in the Box's dtype."""
    if is_discrete(space):
        return action.numpy().astype(np.int64)
    return scale_action(action.clamp(-1.0, 1.0), space).numpy().astype(space.dtype)
