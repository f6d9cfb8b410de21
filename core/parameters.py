"""Named parameters: the types used across the library, and choosing which ones an update may change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

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
