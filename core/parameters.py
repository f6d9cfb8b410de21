"""Named parameters: the types used across the library, and choosing which ones an update may change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

Params = dict[str, torch.Tensor]  # a model's weights by parameter name
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (prediction, target) -> scalar loss
ParamSelector = Sequence[str] | Callable[[str], bool] | None


def select_parameter_names(
    params: Mapping[str, torch.Tensor], selector: ParamSelector, option: str = "params_to_adapt"
) -> list[str]:
    """Names of the selected parameters, in the model's order: all (None), the listed names, or those a
    predicate accepts. Unknown names, an empty selection and frozen (requires_grad=False) parameters raise
    ValueError naming `option`."""
    if selector is None:
        names = list(params)
    elif callable(selector):
        names = [name for name in params if selector(name)]
    else:
        unknown = sorted(set(selector) - set(params))
        if unknown:
            raise ValueError(f"{option} names unknown parameters {unknown}; the model has {sorted(params)}")
        names = [name for name in params if name in set(selector)]
    if not names:
        raise ValueError(f"{option} selects no parameter")
    not_trainable = [name for name in names if not params[name].requires_grad]
    if not_trainable:
        raise ValueError(f"{option} selects parameters with requires_grad=False: {not_trainable}")
    return names


def is_stateful(model: torch.nn.Module) -> bool:
    """A stateful model has `init_hidden(batch_size)` and `forward(x, hidden_state, reset=None) -> (y, h')`."""
    return callable(getattr(model, "init_hidden", None))


def clip_by_total_norm(grads: Params, max_norm: float | None) -> Params:
    """Scale `grads` by min(1, max_norm / ||grads||) (total norm over all tensors); None leaves them as they are.

    Written as max_norm / sqrt(max(||g||^2, max_norm^2)) so that it stays differentiable, without NaN,
    at an all-zero gradient (where the derivative of ||g|| is undefined): torch.func second-order MAML
    differentiates through this function.
    """
    if max_norm is None:
        return grads
    squared_norm = sum(g.square().sum() for g in grads.values())
    scale = max_norm * torch.rsqrt(torch.clamp(squared_norm, min=max_norm**2))
    return {name: g * scale for name, g in grads.items()}


def sgd_step(params: Params, grads: Params, learning_rates: Mapping[str, torch.Tensor | float]) -> Params:
    """theta_i - alpha_i * g_i for every parameter in `grads` (alpha a float or a tensor of the parameter's shape)."""
    return {name: params[name] - learning_rates[name] * grads[name] for name in grads}


def mse_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The default loss: `F.mse_loss`, but a target of another shape is an error, not a broadcast."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"the model's output has shape {tuple(prediction.shape)} and the targets {tuple(target.shape)}: "
            "they must match (is the target width the model's output_dim?)"
        )
    return F.mse_loss(prediction, target)
