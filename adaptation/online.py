"""Online test-time adaptation while acting in E episodes at once, each episode with its own adapted weights.

Every observed transition (x_t, y_t, episode_start_t) goes into a ring buffer holding the last
`config.window` transitions per episode, together with the hidden state that entered it. Every
`config.update_every` observations, each episode's weights are re-adapted from theta* (GrBAL's restart
rule, Nagabandi et al. 2019) on its window with MetaMAML's inner step — the function meta-training uses,
`torch.func.vmap`-ed over the E episodes:

    theta_e = theta* - alpha * clip(grad L_window_e(theta*))            (`num_steps` times)

starting the window from `init_hidden` (`window_state="zero"`, the convention support windows are
meta-trained with) or from the state that entered it ("carried"), with resets at the episode starts inside
it. An update whose window loss is not finite, or exceeds `max_loss_increase` times the loss at theta*, is
rolled back to theta* for that episode. `num_steps=0` never changes the weights: the state is still
recomputed over the window (the memory-only control, which isolates memory length from the weight update).

After an update the returned hidden state is the window run through the new weights from its starting
state; between updates the caller advances the state under the current weights (the planner's `observe`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call, vmap

from core.parameters import Params
from core.settings import check_settings, integer, is_int, number, one_of, optional, setting
from meta_rl.meta_maml import MetaMAML

WINDOW_STATES = ("zero", "carried")


@dataclass(frozen=True)
class OnlineAdaptationConfig:
    """Adapting while acting: MetaMAML's inner step (its learned rates, subset and clip) on the last `window`
    transitions every `update_every` steps, restarting from theta*. The defaults are the pipeline's."""

    num_steps: int = setting(1, "inner steps per test-time update (0: memory only)", integer(0))
    window: int = setting(16, "transitions adapted on (the support size of meta-training by default)", integer(1))
    update_every: int = setting(5, "environment steps between two updates", integer(1))
    window_state: str = setting(
        "zero", "state the window starts from: zero (as meta-trained) or carried", one_of(WINDOW_STATES)
    )
    max_loss_increase: float | None = setting(
        1.0,
        "roll back an update whose window loss exceeds this factor times the loss at theta* (none: off)",
        optional(number(1)),
    )

    def __post_init__(self) -> None:
        check_settings(self)


class OnlineAdapter:
    """Ring buffer of the last `window` transitions per episode and one adapted weight set per episode.

    Shapes (E = num_envs, W = window): `observe(x_t (E, D_in), y_t (E, D_out), episode_start (E,),
    hidden_before (E, N))`. The model must be stateful (a world model with `init_hidden`). The step size, the
    adapted subset, the gradient clip and the loss are MetaMAML's (`meta.learning_rates()`, `meta.loss_fn`).
    """

    def __init__(self, meta: MetaMAML, config: OnlineAdaptationConfig | None = None, num_envs: int = 1) -> None:
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if not meta.stateful:
            raise ValueError(f"OnlineAdapter needs a stateful model, {type(meta.model).__name__} has no init_hidden")
        self.meta = meta
        self.config = config if config is not None else OnlineAdaptationConfig()
        self.num_envs = num_envs
        self.theta = {name: value.detach() for name, value in meta.params().items()}
        self._buffers = dict(meta.model.named_buffers())
        self._inputs: torch.Tensor | None = None  # (E, W, D_in), allocated at the first observation
        self._targets: torch.Tensor | None = None  # (E, W, D_out)
        self._entering: torch.Tensor | None = None  # (E, W, N) state before each transition
        self._starts: torch.Tensor | None = None  # (E, W) episode starts
        self._count = 0
        self._next = 0
        self._since_update = 0

    def __len__(self) -> int:
        """Number of transitions in the window (at most `window`)."""
        return self._count

    def observe(
        self, x_t: torch.Tensor, y_t: torch.Tensor, episode_start: torch.Tensor, hidden_before: torch.Tensor
    ) -> dict | None:
        """Record one transition per episode; adapt when `update_every` observations have passed.

        x_t (E, D_in) the model's input, y_t (E, D_out) its target, episode_start (E,) bool (x_t begins an
        episode), hidden_before (E, N) the state that entered x_t. Returns None, or after an update a log with
        "params" (stacked (E, ...) weights), "hidden_state" (E, N) (the state after x_t under them),
        "loss_before" and "loss_after" (E,) window losses at theta* and at the kept weights, "rolled_back" (E,).
        """
        self._write(x_t, y_t, episode_start, hidden_before)
        self._since_update += 1
        if self._since_update < self.config.update_every:
            return None
        self._since_update = 0
        return self._update(*self.window())

    def window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The window, oldest first: x (E, T, D_in), y (E, T, D_out), the state entering it (E, N), reset (E, T)."""
        if self._count == 0:
            raise ValueError("the window is empty: observe a transition first")
        device = self._inputs.device
        order = (torch.arange(self._count, device=device) + self._next - self._count) % self.config.window
        return self._inputs[:, order], self._targets[:, order], self._entering[:, order[0]], self._starts[:, order]

    def _update(self, x: torch.Tensor, y: torch.Tensor, entering: torch.Tensor, reset: torch.Tensor) -> dict:
        start = torch.zeros_like(entering) if self.config.window_state == "zero" else entering
        loss_before = vmap(self._window_loss, in_dims=(None, 0, 0, 0, 0))(self.theta, x, y, start, reset)
        if self.config.num_steps == 0:
            params = {name: value.expand(self.num_envs, *value.shape) for name, value in self.theta.items()}
            loss_after, rolled_back = loss_before, torch.zeros(self.num_envs, dtype=torch.bool, device=x.device)
        else:
            adapted = vmap(self._adapt_one)(x, y, start, reset)
            loss_adapted = vmap(self._window_loss)(adapted, x, y, start, reset)
            finite = torch.stack([value.flatten(1).isfinite().all(1) for value in adapted.values()]).all(0)
            keep = finite & loss_adapted.isfinite()
            if self.config.max_loss_increase is not None:
                keep = keep & (loss_adapted <= loss_before * self.config.max_loss_increase)
            params = {
                name: torch.where(keep.view(-1, *[1] * self.theta[name].dim()), adapted[name], self.theta[name])
                for name in self.theta
            }
            loss_after, rolled_back = torch.where(keep, loss_adapted, loss_before), ~keep
        hidden = vmap(self._final_state)(params, x, start, reset)
        return {
            "params": params,
            "hidden_state": hidden,
            "loss_before": loss_before,
            "loss_after": loss_after,
            "rolled_back": rolled_back,
        }

    def _adapt_one(self, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor, reset: torch.Tensor) -> Params:
        """One episode's window (T, ·) -> its adapted weights (the MetaMAML inner loop, from theta*)."""
        fast = self.meta.inner_loop(
            self.theta, x[None], y[None], start[None], reset[None], self.meta.loss_fn, self.config.num_steps
        )
        return {name: value.detach() for name, value in fast.items()}

    def _run(self, params: Params, x: torch.Tensor, start: torch.Tensor, reset: torch.Tensor):
        return functional_call(self.meta.model, (params, self._buffers), (x[None], start[None]), {"reset": reset[None]})

    def _window_loss(self, params: Params, x, y, start, reset) -> torch.Tensor:
        return self.meta.loss_fn(self._run(params, x, start, reset)[0][0], y)

    def _final_state(self, params: Params, x, start, reset) -> torch.Tensor:
        return self._run(params, x, start, reset)[1][0]

    def _write(self, x_t: torch.Tensor, y_t: torch.Tensor, start: torch.Tensor, hidden: torch.Tensor) -> None:
        shapes = (tuple(x_t.shape[:1]), tuple(y_t.shape[:1]), tuple(start.shape), tuple(hidden.shape[:1]))
        if x_t.dim() != 2 or y_t.dim() != 2 or hidden.dim() != 2 or set(shapes) != {(self.num_envs,)}:
            raise ValueError(
                f"observe expects x_t (E, D_in), y_t (E, D_out), episode_start (E,) and hidden_before (E, N) with "
                f"E = {self.num_envs}, got {tuple(x_t.shape)}, {tuple(y_t.shape)}, {tuple(start.shape)}, "
                f"{tuple(hidden.shape)}"
            )
        if not (torch.isfinite(x_t).all() and torch.isfinite(y_t).all()):
            raise ValueError("observe got a non-finite x_t or y_t: it would poison the window and the hidden state")
        if self._inputs is None:
            window = self.config.window
            self._inputs = x_t.new_zeros(self.num_envs, window, x_t.shape[1])
            self._targets = y_t.new_zeros(self.num_envs, window, y_t.shape[1])
            self._entering = hidden.new_zeros(self.num_envs, window, hidden.shape[1])
            self._starts = torch.zeros(self.num_envs, window, dtype=torch.bool, device=x_t.device)
        slot = self._next
        self._inputs[:, slot] = x_t.detach()
        self._targets[:, slot] = y_t.detach()
        self._entering[:, slot] = hidden.detach()
        self._starts[:, slot] = start.to(torch.bool)
        self._next = (slot + 1) % self.config.window
        self._count = min(self._count + 1, self.config.window)
