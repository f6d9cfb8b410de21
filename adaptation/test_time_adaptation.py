"""Test-time adaptation of a stateful (or stateless) model on recent data, with rollback safeguards.

    restart:     theta <- theta*, then `num_steps` optimizer steps on the batch, fresh optimizer state
                 (GrBAL, Nagabandi et al. 2019: every update starts from the meta-learned weights)
    accumulate:  `num_steps` optimizer steps from the current weights, optimizer state kept

The model's parameters are updated in place; the Adapter is used while acting and is not differentiated
through. An update is rolled back when a loss, a gradient or a weight becomes non-finite (the weights are
restored to what they were before the `update_step` call: a bad batch leaves them untouched), or, with
`max_loss_increase`, when the loss on the batch grew by more than that factor over the loss at the update's
starting weights (the model then holds those starting weights: theta* in restart mode). Updates never write
parameters outside `params_to_adapt`; `reset` and `set_reference` load every parameter.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils import get_total_norm

from core.parameters import (
    LossFn,
    Params,
    ParamSelector,
    clip_by_total_norm,
    is_stateful,
    mse_loss,
    select_parameter_names,
    sgd_step,
)
from core.settings import Rule, check_settings, integer, number, one_of, optional, positive, setting

if TYPE_CHECKING:
    from meta_rl.meta_maml import MetaMAML

OPTIMIZERS = ("sgd", "adam")
MODES = ("restart", "accumulate")


def _parameter_selector(selector: ParamSelector) -> bool:
    return (
        selector is None
        or callable(selector)
        or (
            isinstance(selector, Sequence)
            and not isinstance(selector, str)
            and len(selector) > 0
            and all(isinstance(name, str) for name in selector)
        )
    )


@dataclass(frozen=True)
class AdaptationConfig:
    """Settings of one `Adapter.update_step` (adapting while acting, window and schedule, is
    `adaptation.online.OnlineAdaptationConfig`). A non-finite loss, gradient or weight always rolls the update
    back; `max_loss_increase` also rejects an update that raised the batch loss by more than that factor."""

    learning_rate: float = setting(0.01, "optimizer step size (MetaMAML's inner_lr by default)", positive())
    num_steps: int = setting(1, "optimizer steps per update (0 only evaluates and tracks the state)", integer(0))
    grad_clip_norm: float | None = setting(
        None, "clip the gradient's total norm to this (none: off)", optional(positive())
    )
    optimizer: str = setting("sgd", "sgd (plain, as in the MAML inner loop) or adam", one_of(OPTIMIZERS))
    mode: str = setting(
        "restart", "restart (from theta* at every update) or accumulate (from the current weights)", one_of(MODES)
    )
    params_to_adapt: ParamSelector = setting(
        None,
        "None = all parameters, a list of parameter names, or a predicate name -> bool",
        Rule(_parameter_selector, "none, a non-empty list of parameter names or a predicate"),
    )
    max_loss_increase: float | None = setting(
        None, "reject an update whose loss_after > loss_before * this (none: off)", optional(number(1))
    )

    def __post_init__(self) -> None:
        check_settings(self)


class Adapter:
    """Adapts `model` in place on batches of recent data; remembers theta* (its weights at creation).

    `model` is stateful when it has `init_hidden(batch_size)` and `forward(x, hidden_state, reset=None)
    -> (output, next_hidden)` (like `core.ssm.SSM`), stateless otherwise (`forward(x) -> output`).
    To keep a meta-learner's model untouched, adapt a copy, or use `Adapter.from_meta(maml)`, which also takes
    over MetaMAML's inner step (learned per-parameter rates, adapted subset, gradient clip).

    SGD steps are `theta_i - alpha_i * clip(g)_i` (the MetaMAML inner step); `learning_rates` maps parameter
    names to per-parameter rates alpha_i (tensors of the parameter's shape), the others use
    `config.learning_rate`.
    """

    def __init__(
        self,
        model: nn.Module,
        config: AdaptationConfig | None = None,
        device: str | torch.device | None = None,
        *,
        loss_fn: LossFn | None = None,
        learning_rates: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        self.config = config if config is not None else AdaptationConfig()
        self.model = model if device is None else model.to(device)
        self.loss_fn = loss_fn or mse_loss
        self.stateful = is_stateful(model)
        named = dict(model.named_parameters())
        if not named:
            raise ValueError(f"{type(model).__name__} has no parameters to adapt")
        self.device = next(iter(named.values())).device
        self.adapted_names = select_parameter_names(named, self.config.params_to_adapt)
        self._adapted = [named[name] for name in self.adapted_names]
        self._reference: Params = {name: param.detach().clone() for name, param in named.items()}
        unknown = sorted(set(learning_rates or {}) - set(self.adapted_names))
        if unknown:
            raise ValueError(f"learning_rates name parameters that are not adapted: {unknown}")
        if learning_rates and self.config.optimizer != "sgd":
            raise ValueError("per-parameter learning_rates need AdaptationConfig.optimizer 'sgd'")
        self.learning_rates: dict[str, torch.Tensor | float] = {
            name: self.config.learning_rate
            if name not in (learning_rates or {})
            else learning_rates[name].detach().to(self.device).clone()
            for name in self.adapted_names
        }
        self._optimizer = self._new_optimizer()

    @classmethod
    def from_meta(cls, meta: MetaMAML, config: AdaptationConfig | None = None) -> Adapter:
        """An Adapter of a copy of `meta.model` whose SGD step is exactly MetaMAML's inner step.

        The step size (learned per-parameter rates or `inner_lr`), the adapted subset, the gradient clip and the
        loss come from `meta` and replace those fields of `config`; the rest (num_steps, mode, max_loss_increase)
        comes from `config`. With num_steps=1 in
        restart mode, `update_step(x, y, h0)` leaves the weights `meta.adapt_task(x, y, h0)` returns.
        """
        config = replace(
            config or AdaptationConfig(),
            learning_rate=meta.inner_lr,
            optimizer="sgd",
            grad_clip_norm=meta.inner_grad_clip,
            params_to_adapt=list(meta.adapt_names),
        )
        return cls(copy.deepcopy(meta.model), config, loss_fn=meta.loss_fn, learning_rates=dict(meta.inner_lrs))

    # ----------------------------------------------------------------- weights
    def reset(self) -> None:
        """Restore theta* exactly and clear the optimizer state."""
        self._load(self._reference)
        self._optimizer = self._new_optimizer()

    def set_reference(self, params: Mapping[str, torch.Tensor]) -> None:
        """Make `params` the new theta* (copied) and load them into the model; clears the optimizer state.

        `params` holds every parameter by name, e.g. `maml.params()` or `model.state_dict()` (buffer entries
        are ignored).
        """
        named = dict(self.model.named_parameters())
        buffers = {name for name, _ in self.model.named_buffers()}
        missing = sorted(set(named) - set(params))
        unknown = sorted(set(params) - set(named) - buffers)
        if missing or unknown:
            raise ValueError(f"set_reference: missing parameters {missing}, unknown names {unknown}")
        for name, param in named.items():
            if params[name].shape != param.shape:
                raise ValueError(
                    f"set_reference: {name} has shape {tuple(params[name].shape)}, the model's is {tuple(param.shape)}"
                )
        self._reference = {
            name: params[name].detach().to(device=param.device, dtype=param.dtype).clone()
            for name, param in named.items()
        }
        self.reset()

    def adapted_params(self) -> Params:
        """Every parameter's current value by name (detached copies), e.g. for `torch.func.functional_call`."""
        return {name: param.detach().clone() for name, param in self.model.named_parameters()}

    # ----------------------------------------------------------------- running the model
    def predict(
        self, x: torch.Tensor, hidden_state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output and next state under the current weights, without gradients.

        x (B, D_in) or (B, T, D_in); hidden_state (B, N), None = `model.init_hidden(B)`; reset (B,) or (B, T).
        Returns (output, next_hidden (B, N)) for a stateful model, (output, None) for a stateless one.
        """
        x = x.to(self.device)
        hidden_state, reset = self._state_inputs(x, hidden_state, reset)
        with torch.no_grad():
            return self._forward(x, hidden_state, reset)

    def _forward(self, x, hidden_state, reset) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.stateful:
            return self.model(x), None
        if reset is None:
            return self.model(x, hidden_state)
        return self.model(x, hidden_state, reset=reset)

    def _state_inputs(self, x, hidden_state, reset) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.stateful:
            if hidden_state is not None or reset is not None:
                raise ValueError(f"{type(self.model).__name__} is stateless: pass hidden_state=None and reset=None")
            return None, None
        hidden_state = self.model.init_hidden(x.shape[0]) if hidden_state is None else hidden_state.detach()
        return hidden_state.to(self.device), None if reset is None else reset.to(self.device)

    # ----------------------------------------------------------------- adaptation
    def update_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        hidden_state: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
    ) -> dict:
        """Adapt on (x, y) with `num_steps` optimizer steps; roll back on failure.

        x (B, T, D_in) (sequence mode) or (B, D_in); y the matching targets (B, T, D_out) or (B, D_out);
        hidden_state (B, N) the state before x, None = `model.init_hidden(B)`; reset (B, T) or (B,): a 1 at t
        resets the state before x_t. Returns a log with floats `loss_before` (at the starting weights: theta*
        in restart mode), `loss_after` (final weights, same batch), `grad_norm` (last gradient, before
        clipping; 0.0 if none), int `steps` (optimizer steps kept; 0 when rolled back), bool `rolled_back`,
        and for a stateful model `hidden_state` (B, N): the state after x under the final weights, detached.
        A non-finite rollback (or an exception, which propagates) restores the weights held before the call;
        a `max_loss_increase` rejection restores the update's starting weights (theta* in restart mode). Both
        clear the optimizer state.
        """
        if x.shape[:-1] != y.shape[:-1]:
            raise ValueError(
                f"update_step: inputs {tuple(x.shape)} and targets {tuple(y.shape)} differ in leading dims"
            )
        x, y = x.detach().to(self.device), y.detach().to(self.device)
        hidden_state, reset = self._state_inputs(x, hidden_state, reset)
        weights_before_call = [param.detach().clone() for param in self._adapted]
        try:
            return self._update(x, y, hidden_state, reset, weights_before_call)
        except BaseException:
            self._roll_back(weights_before_call)
            raise

    def _update(self, x, y, hidden_state, reset, weights_before_call: list[torch.Tensor]) -> dict:
        if self.config.mode == "restart":
            self._restore([self._reference[name] for name in self.adapted_names])
            self._optimizer = self._new_optimizer()
        starting_weights = [param.detach().clone() for param in self._adapted]
        loss_before, grad_norm, steps, failed = self._optimize(x, y, hidden_state, reset)
        loss_after, next_hidden = self._evaluate(x, y, hidden_state, reset)
        if loss_before is None:
            loss_before = loss_after
        failed = failed or not math.isfinite(loss_after) or not self._weights_finite()
        limit = self.config.max_loss_increase
        rolled_back = failed or (limit is not None and loss_after > loss_before * limit)
        if rolled_back:
            self._roll_back(weights_before_call if failed else starting_weights)
            loss_after, next_hidden = self._evaluate(x, y, hidden_state, reset)
            steps = 0

        log = {
            "loss_before": loss_before,
            "loss_after": loss_after,
            "steps": steps,
            "grad_norm": grad_norm,
            "rolled_back": rolled_back,
        }
        if self.stateful:
            log["hidden_state"] = next_hidden
        return log

    def _optimize(self, x, y, hidden_state, reset) -> tuple[float | None, float, int, bool]:
        """Run the optimizer steps; stop at the first non-finite loss or gradient.

        Returns (loss at the starting weights or None if no step ran, last gradient norm, steps, failed).
        """
        loss_before, grad_norm, failed, steps = None, 0.0, False, 0
        try:
            with torch.enable_grad():
                for _ in range(self.config.num_steps):
                    loss = self.loss_fn(self._forward(x, hidden_state, reset)[0], y)
                    loss_value = float(loss.detach())
                    if loss_before is None:
                        loss_before = loss_value
                    if not math.isfinite(loss_value):
                        failed = True
                        break
                    grads = torch.autograd.grad(loss, self._adapted, allow_unused=True, materialize_grads=True)
                    grad_norm = float(get_total_norm(grads))
                    if not math.isfinite(grad_norm):
                        failed = True
                        break
                    self._apply(dict(zip(self.adapted_names, grads, strict=True)))
                    steps += 1
        finally:
            for param in self._adapted:
                param.grad = None
        return loss_before, grad_norm, steps, failed

    def _evaluate(self, x, y, hidden_state, reset) -> tuple[float, torch.Tensor | None]:
        with torch.no_grad():
            output, next_hidden = self._forward(x, hidden_state, reset)
            return float(self.loss_fn(output, y)), next_hidden

    def _weights_finite(self) -> bool:
        return math.isfinite(get_total_norm(self._adapted, norm_type=math.inf))  # largest |weight|

    def _apply(self, grads: Params) -> None:
        """One step: MetaMAML's inner step for SGD, torch.optim.Adam for "adam" (both after clipping)."""
        grads = clip_by_total_norm(grads, self.config.grad_clip_norm)
        if self._optimizer is None:
            params = {name: param.detach() for name, param in zip(self.adapted_names, self._adapted, strict=True)}
            self._restore(list(sgd_step(params, grads, self.learning_rates).values()))
            return
        for param, name in zip(self._adapted, self.adapted_names, strict=True):
            param.grad = grads[name]
        self._optimizer.step()

    def _new_optimizer(self) -> torch.optim.Optimizer | None:
        """Adam's state for "adam"; SGD keeps none."""
        if self.config.optimizer == "adam":
            return torch.optim.Adam(self._adapted, lr=self.config.learning_rate)
        return None

    def _load(self, values: Params) -> None:
        with torch.no_grad():
            for name, param in self.model.named_parameters():
                param.copy_(values[name])

    def _roll_back(self, weights_before_call: list[torch.Tensor]) -> None:
        self._restore(weights_before_call)
        self._optimizer = self._new_optimizer()

    def _restore(self, values: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for param, value in zip(self._adapted, values, strict=True):
                param.copy_(value)
