"""Normalised (support, query) windows of contiguous transitions for model-based meta-learning.

GrBAL style (Nagabandi et al. 2019): a window of M + K contiguous transitions of one env row is
split into a support part (the first M steps, used to adapt) and the query part right after it
(the next K steps, used to evaluate the adapted model). Inputs are normalised concat(obs, action),
targets normalised next_obs - obs, and the reward after them where the world model learns it. Reset masks
mark episode starts inside a window, so a stateful model resets its state there.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from env_runner.rollouts import Rollouts


class Normalizer:
    """Per-feature mean and std of model inputs concat(obs, action) (D_in) and targets (D_out): next_obs - obs,
    then the reward where the world model predicts it (`predicts_reward`; D_out = obs_dim + 1).

    A new Normalizer is the identity; `Normalizer.fit` computes the statistics (fit it on training
    data only). Features whose std is below `min_std` (constant features) keep std 1. Observation entries
    in `dropped_obs` (absolute positions a family's dynamics are invariant to) are left out of the inputs,
    so D_in = obs_dim - len(dropped_obs) + action_dim; the targets keep every entry.

    The reward column's scale is its std divided by sqrt(reward_weight): its normalised values have variance
    `reward_weight`, so in every mean squared error over the targets (meta-training, the inner step, online
    adaptation) the reward's error weighs `reward_weight` times one standardised state entry's.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, dropped_obs: tuple[int, ...] = (), predicts_reward: bool = False
    ) -> None:
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.predicts_reward = predicts_reward
        self.kept_obs = torch.tensor([i for i in range(obs_dim) if i not in set(dropped_obs)], dtype=torch.long)
        input_dim = len(self.kept_obs) + action_dim
        self.input_mean = torch.zeros(input_dim)
        self.input_std = torch.ones(input_dim)
        self.target_mean = torch.zeros(self.target_dim)
        self.target_std = torch.ones(self.target_dim)

    @property
    def input_dim(self) -> int:
        return int(self.input_mean.shape[0])

    @property
    def target_dim(self) -> int:
        """D_out: the state delta's entries, and the reward where it is predicted."""
        return self.obs_dim + int(self.predicts_reward)

    @classmethod
    def fit(
        cls,
        rollouts: Rollouts,
        min_std: float = 1e-6,
        dropped_obs: tuple[int, ...] = (),
        reward_weight: float | None = None,
    ) -> Normalizer:
        """Statistics of `rollouts`; `reward_weight` (None: the reward is not a target) weighs the reward column."""
        if reward_weight is not None and not reward_weight > 0:
            raise ValueError(f"reward_weight must be > 0 (or None: no reward target), received {reward_weight}")
        normalizer = cls(rollouts.obs.shape[-1], rollouts.action.shape[-1], dropped_obs, reward_weight is not None)
        inputs = normalizer._raw_inputs(rollouts.obs, rollouts.action).flatten(0, -2)
        targets = normalizer._raw_targets(rollouts.obs, rollouts.next_obs, rollouts.reward).flatten(0, -2)
        normalizer.input_mean, normalizer.input_std = inputs.mean(0), _floored_std(inputs, min_std)
        normalizer.target_mean, normalizer.target_std = targets.mean(0), _floored_std(targets, min_std)
        if reward_weight is not None:
            normalizer.target_std[-1] /= reward_weight**0.5
        return normalizer

    def _raw_inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        kept = obs if len(self.kept_obs) == obs.shape[-1] else obs[..., self.kept_obs.to(obs.device)]
        return torch.cat([kept, action], dim=-1)

    def _raw_targets(self, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor | None) -> torch.Tensor:
        delta = next_obs - obs
        if not self.predicts_reward:
            return delta
        if reward is None or tuple(reward.shape) != tuple(delta.shape[:-1]):
            shape = None if reward is None else tuple(reward.shape)
            expected = tuple(delta.shape[:-1])
            raise ValueError(f"the targets include the reward: expected rewards of shape {expected}, got {shape}")
        return torch.cat([delta, reward.unsqueeze(-1).to(delta.dtype)], dim=-1)

    def inputs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """obs (..., obs_dim), model action (..., action_dim) -> normalised inputs (..., D_in)."""
        x = self._raw_inputs(obs, action)
        return (x - self.input_mean.to(x.device)) / self.input_std.to(x.device)

    def targets(self, obs: torch.Tensor, next_obs: torch.Tensor, reward: torch.Tensor | None = None) -> torch.Tensor:
        """obs, next_obs (..., obs_dim), reward (...,) -> normalised targets (..., D_out).

        The reward is required where the model predicts it and unused elsewhere.
        """
        target = self._raw_targets(obs, next_obs, reward)
        return (target - self.target_mean.to(target.device)) / self.target_std.to(target.device)

    def denormalize_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Normalised targets (..., D_out) -> next_obs - obs (and the reward) in environment units."""
        return y * self.target_std.to(y.device) + self.target_mean.to(y.device)

    def next_inputs(self, x: torch.Tensor, y: torch.Tensor, next_x: torch.Tensor) -> torch.Tensor:
        """The normalised input after the step from input x that predicted targets y, all (..., ·): x's observation
        entries moved by the predicted change, then next_x's other entries (the next action, any context)."""
        kept = len(self.kept_obs)
        change = self.denormalize_targets(y)[..., self.kept_obs.to(y.device)]  # (..., kept) in environment units
        moved = x[..., :kept] + change / self.input_std[:kept].to(x.device)
        return torch.cat([moved, next_x[..., kept:]], dim=-1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "input_mean": self.input_mean.clone(),
            "input_std": self.input_std.clone(),
            "target_mean": self.target_mean.clone(),
            "target_std": self.target_std.clone(),
            "kept_obs": self.kept_obs.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load statistics saved by `state_dict`; keys and shapes must match this normaliser's."""
        current = self.state_dict()
        if set(state) != set(current):
            raise ValueError(f"expected normaliser keys {sorted(current)}, received {sorted(state)}")
        for name, value in state.items():
            expected = tuple(current[name].shape)
            if tuple(value.shape) != expected:
                raise ValueError(f"{name}: expected shape {expected}, received {tuple(value.shape)}")
            setattr(self, name, value.detach().clone() if name == "kept_obs" else value.detach().clone().float())


def _floored_std(values: torch.Tensor, min_std: float) -> torch.Tensor:
    std = values.std(0)
    return torch.where(std < min_std, torch.ones_like(std), std)


@dataclass
class SegmentBatch:
    """(support, query) windows; `...` is (N,) from `sample_windows`, (num_tasks, W) per task.

    support_x (..., M, D_in), support_y (..., M, D_out), query_x (..., K, D_in),
    query_y (..., K, D_out), support_reset (..., M) and query_reset (..., K) bool: True where an
    episode starts (the model's state resets before consuming that step).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    support_reset: torch.Tensor
    query_reset: torch.Tensor

    def window_tuples(self) -> list[tuple[torch.Tensor, ...]]:
        """Every window of a per-task batch (num_tasks, W, ·) as a task of its own whose support is that one
        window (1, M, ·): the support size that evaluation and online adaptation adapt on."""
        parts = (self.support_x, self.support_y, self.query_x, self.query_y, self.support_reset, self.query_reset)
        return list(zip(*(part.flatten(0, 1).unsqueeze(1) for part in parts), strict=True))

    def task_tuples(self) -> list[tuple[torch.Tensor, ...]]:
        """Per-task (support_x, support_y, query_x, query_y, support_reset, query_reset) of a per-task batch,
        the task format `MetaMAML.meta_update` takes."""
        return list(
            zip(
                self.support_x,
                self.support_y,
                self.query_x,
                self.query_y,
                self.support_reset,
                self.query_reset,
                strict=True,
            )
        )


def _as_generator(generator: torch.Generator | int) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(generator)


def _windows(
    x: torch.Tensor,
    y: torch.Tensor,
    episode_start: torch.Tensor,
    rows: torch.Tensor,
    num_windows: int,
    support_len: int,
    query_len: int,
    generator: torch.Generator,
) -> SegmentBatch:
    """Sample windows from `rows` of x (N, T, D_in), y (N, T, D_out), episode_start (N, T)."""
    window = support_len + query_len
    steps = x.shape[1]
    if support_len < 1 or query_len < 1 or window > steps:
        raise ValueError(f"support_len={support_len} and query_len={query_len} must be >= 1 and fit in {steps} steps")
    row = rows[torch.randint(len(rows), (num_windows,), generator=generator)]
    start = torch.randint(steps - window + 1, (num_windows,), generator=generator)
    time = start[:, None] + torch.arange(window)
    row = row[:, None]
    wx, wy, reset = x[row, time], y[row, time], episode_start[row, time]
    return SegmentBatch(
        support_x=wx[:, :support_len],
        support_y=wy[:, :support_len],
        query_x=wx[:, support_len:],
        query_y=wy[:, support_len:],
        support_reset=reset[:, :support_len],
        query_reset=reset[:, support_len:],
    )


def sample_windows(
    rollouts: Rollouts,
    normalizer: Normalizer,
    num_windows: int,
    support_len: int,
    query_len: int,
    generator: torch.Generator | int,
) -> SegmentBatch:
    """`num_windows` windows from any rows: tensors (N, M, D) and (N, K, D), N = num_windows."""
    x = normalizer.inputs(rollouts.obs, rollouts.action)
    y = normalizer.targets(rollouts.obs, rollouts.next_obs, rollouts.reward)
    rows = torch.arange(rollouts.num_envs)
    return _windows(x, y, rollouts.episode_start, rows, num_windows, support_len, query_len, _as_generator(generator))


@dataclass(frozen=True)
class WindowSource:
    """Normalised rollouts ready to cut windows from: x (N, T, D_in), y (N, T, D_out), episode_start (N, T),
    task_index (N,). Built once per dataset (`WindowSource.of`), so meta-batches do not renormalise it."""

    x: torch.Tensor
    y: torch.Tensor
    episode_start: torch.Tensor
    task_index: torch.Tensor

    @classmethod
    def of(cls, rollouts: Rollouts, normalizer: Normalizer) -> WindowSource:
        return cls(
            x=normalizer.inputs(rollouts.obs, rollouts.action),
            y=normalizer.targets(rollouts.obs, rollouts.next_obs, rollouts.reward),
            episode_start=rollouts.episode_start,
            task_index=rollouts.task_index,
        )


def sample_task_batches(
    rollouts: Rollouts,
    normalizer: Normalizer,
    task_indices: list[int] | torch.Tensor,
    windows_per_task: int,
    support_len: int,
    query_len: int,
    generator: torch.Generator | int,
) -> SegmentBatch:
    """Windows grouped per task: tensors (num_tasks, W, M, D) and (num_tasks, W, K, D).

    Task k's windows come only from rows whose `rollouts.task_index` equals `task_indices[k]`.
    """
    source = WindowSource.of(rollouts, normalizer)
    return sample_source_batches(source, task_indices, windows_per_task, support_len, query_len, generator)


def sample_source_batches(
    source: WindowSource,
    task_indices: list[int] | torch.Tensor,
    windows_per_task: int,
    support_len: int,
    query_len: int,
    generator: torch.Generator | int,
) -> SegmentBatch:
    """`sample_task_batches` on an already normalised `WindowSource`."""
    generator = _as_generator(generator)
    batches = []
    for task in torch.as_tensor(task_indices).tolist():
        rows = torch.nonzero(source.task_index == task).flatten()
        if len(rows) == 0:
            raise ValueError(f"no rollout rows belong to task index {task}")
        batches.append(
            _windows(
                source.x, source.y, source.episode_start, rows, windows_per_task, support_len, query_len, generator
            )
        )
    return SegmentBatch(
        **{f.name: torch.stack([getattr(batch, f.name) for batch in batches]) for f in fields(SegmentBatch)}
    )
