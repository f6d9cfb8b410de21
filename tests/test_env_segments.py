"""Normaliser and (support, query) window sampling."""

from __future__ import annotations

import io

import pytest
import torch

from env_runner.environment import make_task_family
from env_runner.rollouts import Rollouts, collect
from env_runner.segments import Normalizer, sample_task_batches, sample_windows


def _clock_rollouts(num_envs: int = 4, steps: int = 30, episode_len: int = 8) -> Rollouts:
    """Synthetic rollouts whose obs are (time, row): windows can be located exactly."""
    time = torch.arange(steps, dtype=torch.float32).expand(num_envs, steps)
    row = torch.arange(num_envs, dtype=torch.float32)[:, None].expand(num_envs, steps)
    obs = torch.stack([time, row], dim=-1)
    episode_start = (torch.arange(steps) % episode_len == 0).expand(num_envs, steps)
    return Rollouts(
        obs=obs,
        action=torch.zeros(num_envs, steps, 1),
        next_obs=obs + torch.tensor([1.0, 0.0]),
        reward=torch.zeros(num_envs, steps),
        terminated=torch.zeros(num_envs, steps, dtype=torch.bool),
        truncated=torch.zeros(num_envs, steps, dtype=torch.bool),
        episode_start=episode_start.clone(),
        task_index=torch.arange(num_envs) // 2,
        tasks=(),
    )


@pytest.fixture(scope="module")
def pendulum_rollouts():
    family = make_task_family("Pendulum-v1", max_episode_steps=10)
    train = collect(family, family.sample(3, seed=0), steps=30, seed=0)
    test = collect(family, family.sample(3, seed=0, split="ood"), steps=30, seed=1)
    return train, test


def test_normalizer_standardises_the_data_it_is_fitted_on(pendulum_rollouts):
    train, test = pendulum_rollouts
    normalizer = Normalizer.fit(train)
    x = normalizer.inputs(train.obs, train.action).flatten(0, 1)
    y = normalizer.targets(train.obs, train.next_obs).flatten(0, 1)
    torch.testing.assert_close(x.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(3), atol=1e-5, rtol=0)
    assert not torch.allclose(Normalizer.fit(test).target_std, normalizer.target_std)
    deltas = train.next_obs - train.obs
    torch.testing.assert_close(normalizer.denormalize_targets(normalizer.targets(train.obs, train.next_obs)), deltas)


def test_dropped_observation_entries_leave_the_inputs_but_not_the_targets(pendulum_rollouts):
    train = pendulum_rollouts[0]
    normalizer = Normalizer.fit(train, dropped_obs=(0,))
    inputs = normalizer.inputs(train.obs, train.action)
    assert inputs.shape[-1] == 3 and normalizer.targets(train.obs, train.next_obs).shape[-1] == 3
    moved = train.obs.clone()
    moved[..., 0] += 5.0  # an absolute position shift changes no input
    torch.testing.assert_close(normalizer.inputs(moved, train.action), inputs)


def test_normalizer_state_dict_round_trips_through_torch_save(pendulum_rollouts):
    normalizer = Normalizer.fit(pendulum_rollouts[0])
    buffer = io.BytesIO()
    torch.save(normalizer.state_dict(), buffer)
    buffer.seek(0)
    restored = Normalizer(obs_dim=3, action_dim=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for name, value in normalizer.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], value)
    with pytest.raises(ValueError, match=r"expected shape \(4,\), received \(5,\)"):
        restored.load_state_dict({**normalizer.state_dict(), "input_mean": torch.zeros(5)})


def test_constant_features_keep_unit_std():
    normalizer = Normalizer.fit(_clock_rollouts())
    assert normalizer.input_std[-1] == 1.0 and normalizer.target_std[-1] == 1.0


def test_support_directly_precedes_query_and_resets_follow_episode_starts():
    rollouts = _clock_rollouts()
    batch = sample_windows(
        rollouts, Normalizer(obs_dim=2, action_dim=1), num_windows=50, support_len=5, query_len=3, generator=0
    )
    assert batch.support_x.shape == (50, 5, 3) and batch.query_y.shape == (50, 3, 2)
    times = torch.cat([batch.support_x[..., 0], batch.query_x[..., 0]], dim=1)
    torch.testing.assert_close(times[:, 1:] - times[:, :-1], torch.ones(50, 7))
    rows = torch.cat([batch.support_x[..., 1], batch.query_x[..., 1]], dim=1)
    assert (rows == rows[:, :1]).all()
    resets = torch.cat([batch.support_reset, batch.query_reset], dim=1)
    torch.testing.assert_close(resets, times.long() % 8 == 0)
    torch.testing.assert_close(batch.query_y[..., 0], torch.ones(50, 3))


def test_windows_are_reproducible_from_a_seed_or_generator():
    rollouts = _clock_rollouts()
    first = sample_windows(
        rollouts, Normalizer(obs_dim=2, action_dim=1), 10, 4, 2, generator=torch.Generator().manual_seed(3)
    )
    second = sample_windows(rollouts, Normalizer(obs_dim=2, action_dim=1), 10, 4, 2, generator=3)
    torch.testing.assert_close(first.support_x, second.support_x)
    with pytest.raises(ValueError, match="fit in 30 steps"):
        sample_windows(rollouts, Normalizer(obs_dim=2, action_dim=1), 10, 25, 6, generator=0)


def test_task_batches_come_from_their_own_task_rows():
    rollouts = _clock_rollouts()
    batch = sample_task_batches(
        rollouts,
        Normalizer(obs_dim=2, action_dim=1),
        [1, 0],
        windows_per_task=6,
        support_len=4,
        query_len=2,
        generator=0,
    )
    assert batch.support_x.shape == (2, 6, 4, 3) and batch.query_x.shape == (2, 6, 2, 3)
    assert batch.support_reset.shape == (2, 6, 4) and batch.query_reset.shape == (2, 6, 2)
    rows = torch.cat([batch.support_x[..., 1], batch.query_x[..., 1]], dim=2)
    assert set(rows[0].unique().tolist()) <= {2.0, 3.0} and set(rows[1].unique().tolist()) <= {0.0, 1.0}
    tuples = batch.task_tuples()
    assert len(tuples) == 2 and len(tuples[0]) == 6 and tuples[0][0].shape == (6, 4, 3)
    assert tuples[1][4].shape == (6, 4) and tuples[1][5].dtype == torch.bool
    with pytest.raises(ValueError, match="task index 5"):
        sample_task_batches(rollouts, Normalizer(obs_dim=2, action_dim=1), [5], 2, 4, 2, generator=0)
