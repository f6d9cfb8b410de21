"""Online test-time adaptation while acting: a window of recent transitions and the hidden state of the real
trajectory, for E environments stepped together.

Every observed transition (x_t, y_t, episode_start_t) goes into a ring buffer holding the last
`config.window` transitions per environment, together with the hidden state that entered it. Every
`config.update_every` observations the Adapter adapts on the window, starting from the state that entered
the window's oldest transition (`config.window_state="carried"`) or from `init_hidden` ("zero", the
convention MetaMAML's support windows are trained with), and resetting the state at the episode starts
inside the window.

`hidden_state` is the state after the last observed transition, the one a planner continues from:
- after an update it is recomputed by running the window through the adapted weights from the window's
  starting state (the `hidden_state` that `update_step` returns);
- between updates it advances one step per observation under the current weights.
The entering state of the window was itself computed under the weights current when that transition was
observed: the state is exact within the window and approximate beyond it.
"""

from __future__ import annotations

import torch

from adaptation.test_time_adaptation import Adapter
from core.parameters import Params


class OnlineAdapter:
    """Ring buffer of the last `window` transitions per environment + the trajectory's hidden state.

    Shapes (E = num_envs): `observe(x_t (E, D_in), y_t (E, D_out), episode_start (E,))`; with one
    environment, x_t (D_in,), y_t (D_out,) and a bool are accepted too. `hidden_state` (E, N), or None for a
    stateless model. For meta-learned weights: `adapter.set_reference(maml.params())` before acting.
    """

    def __init__(self, adapter: Adapter, num_envs: int = 1) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.adapter = adapter
        self.num_envs = num_envs
        self.window_size = adapter.config.window
        self.update_every = adapter.config.update_every
        self.device = adapter.device
        self._inputs: torch.Tensor | None = None  # (E, W, D_in), allocated at the first observation
        self._targets: torch.Tensor | None = None  # (E, W, D_out)
        self._starts = torch.zeros(num_envs, self.window_size, dtype=torch.bool, device=self.device)
        self._entering: torch.Tensor | None = None  # (E, W, N) state before each transition (stateful only)
        self.clear()

    # ----------------------------------------------------------------- public API
    @property
    def hidden_state(self) -> torch.Tensor | None:
        """(E, N) state after the last observed transition (zeros before the first one and after
        `reset_episode`); None for a stateless model."""
        return self._hidden

    def __len__(self) -> int:
        """Number of transitions in the window (at most `window`)."""
        return self._count

    def params(self) -> Params:
        """The current adapted weights by name (copies), for a planner's `functional_call`."""
        return self.adapter.adapted_params()

    def observe(
        self, x_t: torch.Tensor, y_t: torch.Tensor, episode_start: bool | torch.Tensor = False
    ) -> dict | None:
        """Record one transition per environment; adapt when `update_every` observations have passed.

        x_t (E, D_in) or (D_in,) the model's input, y_t (E, D_out) or (D_out,) its target, episode_start (E,)
        or a bool: x_t is the first input of a new episode (the state is reset before it is consumed).
        Returns the `update_step` log when an update ran, else None. Non-finite values raise ValueError.
        """
        x_t, y_t, start = self._as_batch(x_t, y_t, episode_start)
        start = start | self._pending_start
        self._pending_start = torch.zeros_like(start)
        self._write(x_t, y_t, start)
        self._since_update += 1
        if self._since_update >= self.update_every:
            self._since_update = 0
            x, y, entering, reset = self.window()
            if self.adapter.config.window_state == "zero":
                entering = None  # update_step starts from init_hidden
            log = self.adapter.update_step(x, y, hidden_state=entering, reset=reset)
            self._hidden = log.get("hidden_state")
            return log
        if self.adapter.stateful:
            self._hidden = self.adapter.predict(x_t, self._hidden, reset=start)[1]
        return None

    def window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The window, oldest first: x (E, T, D_in), y (E, T, D_out), the state entering it (E, N) and the
        reset mask (E, T) (both None for a stateless model), T = len(self) <= window."""
        if self._count == 0:
            raise ValueError("the window is empty: observe a transition first")
        order = (torch.arange(self._count, device=self.device) + self._next - self._count) % self.window_size
        x, y = self._inputs[:, order], self._targets[:, order]
        if not self.adapter.stateful:
            return x, y, None, None
        return x, y, self._entering[:, int(order[0])].clone(), self._starts[:, order]

    def reset_episode(self, env_mask: torch.Tensor | None = None) -> None:
        """New episodes begin in the environments of `env_mask` (E,) (None = all): their state is zeroed and
        their next transition is marked as an episode start. The window is kept (same task)."""
        mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device) if env_mask is None else (
            self._env_flags(env_mask, "env_mask"))
        self._pending_start = self._pending_start | mask
        if self._hidden is not None:
            self._hidden = torch.where(mask.unsqueeze(-1), torch.zeros_like(self._hidden), self._hidden)

    def reset(self) -> None:
        """Back to theta* with an empty window and zero states (e.g. when the task may have changed)."""
        self.adapter.reset()
        self.clear()

    def clear(self) -> None:
        """Empty the window and zero the states, keeping the current weights."""
        self._count = 0
        self._next = 0
        self._since_update = 0
        self._pending_start = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._hidden = self.adapter.model.init_hidden(self.num_envs) if self.adapter.stateful else None

    # ----------------------------------------------------------------- internals
    def _as_batch(self, x_t, y_t, episode_start) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x_t.dim() == 1 and y_t.dim() == 1 and self.num_envs == 1:
            x_t, y_t = x_t.unsqueeze(0), y_t.unsqueeze(0)
        if x_t.dim() != 2 or y_t.dim() != 2 or x_t.shape[0] != self.num_envs or y_t.shape[0] != self.num_envs:
            raise ValueError(
                f"observe expects x_t (E, D_in) and y_t (E, D_out) with E = {self.num_envs}, "
                f"got {tuple(x_t.shape)} and {tuple(y_t.shape)}"
            )
        if self._inputs is not None:
            expected = (self._inputs.shape[2], self._targets.shape[2])
            if (x_t.shape[1], y_t.shape[1]) != expected:
                raise ValueError(
                    f"observe expects x_t (E, {expected[0]}) and y_t (E, {expected[1]}) as before, "
                    f"got {tuple(x_t.shape)} and {tuple(y_t.shape)}"
                )
        if not (torch.isfinite(x_t).all() and torch.isfinite(y_t).all()):
            raise ValueError("observe got a non-finite x_t or y_t: it would poison the window and the hidden state")
        start = self._env_flags(torch.as_tensor(episode_start), "episode_start")
        return x_t.detach().to(self.device), y_t.detach().to(self.device), start

    def _env_flags(self, flags: torch.Tensor, what: str) -> torch.Tensor:
        """A bool or (E,) flags -> (E,) bool on the device."""
        flags = flags.to(device=self.device, dtype=torch.bool)
        if flags.dim() == 0:
            return flags.expand(self.num_envs).clone()
        if tuple(flags.shape) != (self.num_envs,):
            raise ValueError(f"{what} must be a bool or of shape ({self.num_envs},), got {tuple(flags.shape)}")
        return flags

    def _write(self, x_t: torch.Tensor, y_t: torch.Tensor, start: torch.Tensor) -> None:
        if self._inputs is None:
            self._inputs = x_t.new_zeros(self.num_envs, self.window_size, x_t.shape[1])
            self._targets = y_t.new_zeros(self.num_envs, self.window_size, y_t.shape[1])
            if self.adapter.stateful:
                self._entering = self._hidden.new_zeros(self.num_envs, self.window_size, self._hidden.shape[1])
        slot = self._next
        self._inputs[:, slot] = x_t
        self._targets[:, slot] = y_t
        self._starts[:, slot] = start
        if self._entering is not None:
            self._entering[:, slot] = self._hidden
        self._next = (slot + 1) % self.window_size
        self._count = min(self._count + 1, self.window_size)
