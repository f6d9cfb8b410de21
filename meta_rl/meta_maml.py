"""MAML on torch.func for stateless and stateful (hidden-state) models.

    theta'_i = theta - alpha * grad L_support_i(theta)              (num_inner_steps plain SGD steps)
    L_outer  = mean_i L_query_i(theta'_i)                           (one Adam step on theta)

Second order by default: the outer gradient flows through the inner gradients (Finn et al. 2017).
`first_order=True` detaches the inner gradients. `learn_inner_lr=True` makes alpha a learned tensor per
parameter (Meta-SGD, Li et al. 2017). `adapt_params` restricts the inner loop to some parameters (ANIL,
Raghu et al. 2020); the others still receive outer gradients. `inner_grad_clip` caps the norm of each
task's inner gradient (a guard against windows far from the training data). Tasks of equal shapes are
adapted together with `torch.func.vmap`, ragged task lists group by shape. `loss_fn` (default: MSE) is the
inner and the outer loss (`core.heads.OutputHead.loss` for an ensemble or a Gaussian head).

A task is `(support_x, support_y, query_x, query_y)` or, for stateful models with episode boundaries
inside the windows, `(support_x, support_y, query_x, query_y, support_reset, query_reset)`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

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
from core.settings import is_int, is_number, require
from meta_rl.distributed import sharded_backward


class MetaMAML:
    """Meta-learns the initial weights of `model` (and optionally its inner learning rates)."""

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
        outer_lr: float = 0.001,
        first_order: bool = False,
        *,
        num_inner_steps: int = 1,
        learn_inner_lr: bool = False,
        adapt_params: ParamSelector = None,
        grad_clip_norm: float | None = None,
        inner_grad_clip: float | None = None,
        loss_fn: LossFn = mse_loss,
    ) -> None:
        require(is_number(inner_lr) and inner_lr > 0, "inner_lr", "a finite number > 0", inner_lr)
        require(is_number(outer_lr) and outer_lr > 0, "outer_lr", "a finite number > 0", outer_lr)
        require(is_int(num_inner_steps) and num_inner_steps >= 1, "num_inner_steps", "an int >= 1", num_inner_steps)
        self.model = model
        self.inner_lr = float(inner_lr)
        self.outer_lr = float(outer_lr)
        self.first_order = first_order
        self.num_inner_steps = num_inner_steps
        self.grad_clip_norm = grad_clip_norm
        for name, clip in (("grad_clip_norm", grad_clip_norm), ("inner_grad_clip", inner_grad_clip)):
            require(clip is None or (is_number(clip) and clip > 0), name, "none or a finite number > 0", clip)
        self.inner_grad_clip = inner_grad_clip
        self.loss_fn = loss_fn  # the inner and outer loss wherever a call names none
        self.stateful = is_stateful(model)
        self.skipped_updates = 0  # meta-updates refused because the meta-gradient was not finite
        self.adapt_names = select_parameter_names(dict(model.named_parameters()), adapt_params, "adapt_params")
        self.inner_lrs: dict[str, nn.Parameter] = {}
        if learn_inner_lr:
            self.inner_lrs = {
                name: nn.Parameter(torch.full_like(param, self.inner_lr).detach())
                for name, param in model.named_parameters()
                if name in self.adapt_names
            }
        meta_parameters = [*model.parameters(), *self.inner_lrs.values()]
        self.optimizer = torch.optim.Adam(meta_parameters, lr=self.outer_lr)

    # ----------------------------------------------------------------- functional model
    def params(self) -> Params:
        """The model's own parameters by name (the meta-learned initialisation)."""
        return dict(self.model.named_parameters())

    def functional_forward(
        self,
        x: torch.Tensor,
        hidden_state: torch.Tensor | None = None,
        params: Params | None = None,
        reset: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run the model with `params` (missing names: the model's own).

        x (B, D_in) or (B, T, D_in); hidden_state (B, N) for a stateful model, None for a stateless one;
        reset (B,) or (B, T). Returns `(output, next_state)` for a stateful model, `output` for a stateless one.
        """
        if self.stateful and hidden_state is None:
            raise ValueError(
                f"{type(self.model).__name__} is stateful: functional_forward needs a hidden_state "
                f"(e.g. model.init_hidden({x.shape[0]}))"
            )
        if not self.stateful and (hidden_state is not None or reset is not None):
            raise ValueError(f"{type(self.model).__name__} is stateless: pass hidden_state=None and no reset")
        return self._call(self.params() if params is None else {**self.params(), **params}, x, hidden_state, reset)

    def _call(self, params: Params, x, hidden, reset):
        """The model under `params`, a complete dict of its parameters (no merging: the inner loop's hot path)."""
        args = (x, hidden) if self.stateful else (x,)
        kwargs = {} if reset is None else {"reset": reset}
        return functional_call(self.model, (params, dict(self.model.named_buffers())), args, kwargs)

    def _loss(self, params: Params, x, y, hidden, reset, loss_fn: LossFn) -> torch.Tensor:
        output = self._call(params, x, hidden, reset)
        return loss_fn(output[0] if self.stateful else output, y)

    def inner_loop(self, params: Params, x, y, hidden, reset, loss_fn: LossFn, num_steps: int) -> Params:
        """The inner loop: `num_steps` clipped SGD steps of the adapted parameters on the support loss.

        params: every parameter by name (e.g. `self.params()`); x (B, T, D_in), y (B, T, D_out), hidden (B, N) or
        None, reset (B, T) or None. Pure torch.func, so it works inside `vmap` (meta-training batches tasks,
        `OnlineAdapter` batches episodes through it) and is differentiable unless `first_order`.
        """
        frozen = {name: value for name, value in params.items() if name not in self.adapt_names}
        fast = {name: params[name] for name in self.adapt_names}

        def support_loss(fast_params: Params) -> torch.Tensor:
            return self._loss({**frozen, **fast_params}, x, y, hidden, reset, loss_fn)

        for _ in range(num_steps):
            grads = grad(support_loss)(fast)
            if self.first_order:
                grads = {name: g.detach() for name, g in grads.items()}
            fast = sgd_step(fast, clip_by_total_norm(grads, self.inner_grad_clip), self.learning_rates())
        return {**frozen, **fast}

    def learning_rates(self) -> dict[str, torch.Tensor | float]:
        """The inner step size of every adapted parameter: its learned tensor (Meta-SGD) or `inner_lr`."""
        return {name: self.inner_lrs.get(name, self.inner_lr) for name in self.adapt_names}

    def _initial_hidden(self, initial_hidden_state, x: torch.Tensor, batch_dim: int = 0):
        if not self.stateful:
            if initial_hidden_state is not None:
                raise ValueError(f"{type(self.model).__name__} is stateless: initial_hidden_state must be None")
            return None
        if initial_hidden_state is None:
            return self.model.init_hidden(x.shape[batch_dim])
        if initial_hidden_state.shape[0] != x.shape[batch_dim]:
            raise ValueError(
                f"initial_hidden_state has batch {initial_hidden_state.shape[0]} but the data has batch "
                f"{x.shape[batch_dim]}"
            )
        return initial_hidden_state

    # ----------------------------------------------------------------- public API
    def adapt_task(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        initial_hidden_state: torch.Tensor | None = None,
        loss_fn: LossFn | None = None,
        num_steps: int = 1,
        reset: torch.Tensor | None = None,
    ) -> Params:
        """Fast weights after `num_steps` inner SGD steps on one task's support set.

        support_x (B, T, D_in) or (B, D_in), support_y matching the model's output. The returned dict holds
        every parameter (frozen ones unchanged) and is differentiable w.r.t. the model's parameters unless
        `first_order`.
        """
        _check_pair(support_x, support_y, "support")
        require(is_int(num_steps) and num_steps >= 0, "num_steps", "an int >= 0", num_steps)
        hidden = self._initial_hidden(initial_hidden_state, support_x)
        return self.inner_loop(self.params(), support_x, support_y, hidden, reset, loss_fn or self.loss_fn, num_steps)

    def meta_loss(
        self,
        tasks: Sequence[tuple[torch.Tensor, ...]],
        initial_hidden_state: torch.Tensor | None = None,
        loss_fn: LossFn | None = None,
    ) -> torch.Tensor:
        """Differentiable outer loss: mean over tasks of the query loss after adaptation (vmap per shape group)."""
        return self._summed_task_losses(tasks, initial_hidden_state, loss_fn) / len(tasks)

    def _summed_task_losses(
        self, tasks: Sequence[tuple[torch.Tensor, ...]], initial_hidden_state, loss_fn: LossFn | None
    ) -> torch.Tensor:
        loss_fn = loss_fn or self.loss_fn
        params = self.params()
        total = torch.zeros((), device=next(iter(params.values())).device)
        for group in _group_by_shape(tasks):
            support_x, support_y, query_x, query_y, support_reset, query_reset = (
                None if parts[0] is None else torch.stack(parts) for parts in zip(*group, strict=True)
            )
            support_hidden = self._initial_hidden(initial_hidden_state, support_x, batch_dim=1)
            query_hidden = self._initial_hidden(initial_hidden_state, query_x, batch_dim=1)
            task_loss = partial(self._query_loss_after_adaptation, params, loss_fn, support_hidden, query_hidden)
            reset_dim = None if support_reset is None else 0
            losses = vmap(task_loss, in_dims=(0, 0, 0, 0, reset_dim, reset_dim))(
                support_x, support_y, query_x, query_y, support_reset, query_reset
            )
            total = total + losses.sum()
        return total

    def _query_loss_after_adaptation(
        self, params: Params, loss_fn: LossFn, support_hidden, query_hidden, sx, sy, qx, qy, s_reset, q_reset
    ) -> torch.Tensor:
        """One task's query loss under the weights adapted on its support set (the function vmapped over tasks)."""
        fast = self.inner_loop(params, sx, sy, support_hidden, s_reset, loss_fn, self.num_inner_steps)
        return self._loss(fast, qx, qy, query_hidden, q_reset, loss_fn)

    def meta_update(
        self,
        tasks: Sequence[tuple[torch.Tensor, ...]],
        initial_hidden_state: torch.Tensor | None = None,
        loss_fn: LossFn | None = None,
    ) -> float:
        """One outer Adam step on the mean post-adaptation query loss; returns that loss.

        A non-finite meta-gradient is never applied: the step is skipped with a warning and counted in
        `skipped_updates`.

        Under torch.distributed every rank passes the same `tasks`; each adapts its shard and the
        meta-gradients are summed over ranks, so all ranks take the same step as one process would.
        """
        _check_not_empty(tasks)
        self.optimizer.zero_grad(set_to_none=True)
        loss = sharded_backward(
            lambda local_tasks: self._summed_task_losses(local_tasks, initial_hidden_state, loss_fn) / len(tasks),
            tasks,
            self._meta_parameters(),
        )
        gradients = [p.grad for p in self._meta_parameters() if p.grad is not None]
        if not torch.isfinite(torch.nn.utils.get_total_norm(gradients)):
            self.skipped_updates += 1
            warnings.warn(f"MetaMAML skipped a meta-update with a non-finite meta-gradient (loss {loss})", stacklevel=2)
            self.optimizer.zero_grad(set_to_none=True)
            return loss
        if self.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._meta_parameters(), self.grad_clip_norm)
        self.optimizer.step()
        return loss

    def _meta_parameters(self) -> list[torch.Tensor]:
        return [*self.model.parameters(), *self.inner_lrs.values()]

    def state_dict(self) -> dict:
        """Model weights, learned inner rates and optimizer state, for checkpoint and resume."""
        return {
            "model": self.model.state_dict(),
            "inner_lrs": {name: lr.detach().clone() for name, lr in self.inner_lrs.items()},
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned (the learned rates must name the same parameters)."""
        if set(state.get("inner_lrs", {})) != set(self.inner_lrs):
            raise ValueError(
                f"learned inner rates in the state ({sorted(state.get('inner_lrs', {}))}) do not match this "
                f"learner ({sorted(self.inner_lrs)})"
            )
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for name, lr in state["inner_lrs"].items():
                self.inner_lrs[name].copy_(lr)
        self.optimizer.load_state_dict(state["optimizer"])


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"{what} inputs {tuple(x.shape)} and targets {tuple(y.shape)} differ in leading dims")


def _check_not_empty(tasks: Sequence) -> None:
    if len(tasks) == 0:
        raise ValueError("MetaMAML needs at least one task, got an empty task list")


def _group_by_shape(tasks: Sequence[tuple[torch.Tensor, ...]]) -> list[list[tuple]]:
    """Validate tasks and group them by the shapes of their tensors (each group is vmapped at once)."""
    _check_not_empty(tasks)
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    feature_dims = None
    for index, task in enumerate(tasks):
        if len(task) not in (4, 6):
            raise ValueError(
                f"task {index} has {len(task)} parts; expected (support_x, support_y, query_x, query_y) "
                "optionally followed by (support_reset, query_reset)"
            )
        support_x, support_y, query_x, query_y = task[:4]
        _check_pair(support_x, support_y, f"task {index} support")
        _check_pair(query_x, query_y, f"task {index} query")
        dims = (support_x.shape[-1], support_y.shape[-1], query_x.shape[-1], query_y.shape[-1])
        if dims[0] != dims[2] or dims[1] != dims[3]:
            raise ValueError(f"task {index}: support and query feature dims differ: (x, y, x, y) dims {dims}")
        if feature_dims is not None and dims != feature_dims:
            raise ValueError(f"task {index} has feature dims {dims}, earlier tasks have {feature_dims}")
        feature_dims = dims
        full = tuple(task) if len(task) == 6 else (*task, None, None)
        key = tuple(None if part is None else tuple(part.shape) for part in full)
        groups[key].append(full)
    return list(groups.values())
