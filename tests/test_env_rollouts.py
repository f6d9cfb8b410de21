"""Rollout collection: reproducibility, shapes, policies and autoreset handling (no fake transitions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from env_runner.environment import make_task_family
from env_runner.rollouts import Rollouts, collect


@pytest.fixture(scope="module")
def short_pendulum():
    return make_task_family("Pendulum-v1", max_episode_steps=7)


def _assert_rollouts_equal(a: Rollouts, b: Rollouts) -> None:
    for name in ("obs", "action", "next_obs", "reward", "terminated", "truncated", "episode_start", "task_index"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_same_seed_gives_identical_rollouts(short_pendulum):
    tasks = short_pendulum.sample(2, seed=0)
    first = collect(short_pendulum, tasks, steps=20, seed=5)
    _assert_rollouts_equal(first, collect(short_pendulum, tasks, steps=20, seed=5))
    assert not torch.equal(first.obs, collect(short_pendulum, tasks, steps=20, seed=6).obs)


def test_rollout_shapes_dtypes_and_task_index(short_pendulum):
    tasks = short_pendulum.sample(3, seed=0)
    rollouts = collect(short_pendulum, tasks, steps=10, seed=0, envs_per_task=2, progress=True)
    assert rollouts.obs.shape == rollouts.next_obs.shape == (6, 10, 3)
    assert rollouts.action.shape == (6, 10, 1) and rollouts.reward.shape == (6, 10)
    assert rollouts.obs.dtype == rollouts.action.dtype == rollouts.reward.dtype == torch.float32
    assert rollouts.episode_start.dtype == rollouts.terminated.dtype == torch.bool
    assert rollouts.task_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert rollouts.tasks == tuple(tasks)


def test_discrete_actions_are_stored_one_hot():
    family = make_task_family("CartPole-v1")
    rollouts = collect(family, family.sample(2, seed=0), steps=30, seed=0)
    assert rollouts.action.shape == (2, 30, 2)
    torch.testing.assert_close(rollouts.action.sum(-1), torch.ones(2, 30))


def test_policy_callable_drives_the_envs_and_is_shape_checked(short_pendulum):
    tasks = short_pendulum.sample(2, seed=0)
    seen_shapes = []

    def push_left(obs: torch.Tensor) -> torch.Tensor:
        seen_shapes.append(tuple(obs.shape))
        return -torch.ones(obs.shape[0], 1)

    rollouts = collect(short_pendulum, tasks, steps=5, policy=push_left, seed=0)
    assert set(seen_shapes) == {(2, 3)}
    torch.testing.assert_close(rollouts.action, -torch.ones(2, 5, 1))
    with pytest.raises(ValueError, match=r"expected .*\(2, 1\).*received shape \(2,\)"):
        collect(short_pendulum, tasks, steps=5, policy=lambda obs: np.zeros(2, dtype=np.float32), seed=0)


def _pendulum_next_thdot(obs: torch.Tensor, action: torch.Tensor, params: dict[str, float]) -> torch.Tensor:
    """gymnasium's Pendulum velocity update from (cos, sin, thdot) and the torque."""
    g, m, length = params["g"], params["m"], params["l"]
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = action[..., 0].clamp(-2.0, 2.0)
    thdot = obs[..., 2] + (3 * g / (2 * length) * torch.sin(theta) + 3.0 / (m * length**2) * torque) * 0.05
    return thdot.clamp(-8.0, 8.0)


def test_truncation_keeps_the_true_next_obs_and_marks_episode_starts(short_pendulum):
    tasks = short_pendulum.sample(2, seed=0)
    rollouts = collect(short_pendulum, tasks, steps=20, seed=0)
    expected_starts = torch.zeros(20, dtype=torch.bool)
    expected_starts[[0, 7, 14]] = True
    expected_truncated = torch.zeros(20, dtype=torch.bool)
    expected_truncated[[6, 13]] = True
    for row in range(2):
        torch.testing.assert_close(rollouts.episode_start[row], expected_starts)
        torch.testing.assert_close(rollouts.truncated[row], expected_truncated)
        # every transition, the truncating ones included, follows the task's dynamics
        predicted = _pendulum_next_thdot(rollouts.obs[row], rollouts.action[row], tasks[row].params)
        torch.testing.assert_close(predicted, rollouts.next_obs[row, :, 2], rtol=1e-4, atol=1e-4)
        # consecutive transitions chain, except across episode starts (a reset in between)
        chained = ~rollouts.episode_start[row, 1:]
        torch.testing.assert_close(rollouts.obs[row, 1:][chained], rollouts.next_obs[row, :-1][chained])
        assert not torch.allclose(rollouts.obs[row, 7], rollouts.next_obs[row, 6])


def test_termination_keeps_the_terminal_obs_not_the_reset_obs():
    family = make_task_family("CartPole-v1")
    rollouts = collect(family, family.sample(2, seed=0), steps=100, seed=0)
    ends = rollouts.terminated
    assert ends.sum() >= 2 and not rollouts.truncated.any()
    terminal = rollouts.next_obs[ends]
    assert ((terminal[:, 0].abs() > 2.4) | (terminal[:, 2].abs() > 12 * 2 * np.pi / 360)).all()
    starts_after_end = torch.zeros_like(ends)
    starts_after_end[:, 1:] = ends[:, :-1]
    torch.testing.assert_close(rollouts.episode_start[:, 1:], ends[:, :-1])
    assert (rollouts.obs[starts_after_end].abs() <= 0.05).all()
