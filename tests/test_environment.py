"""Environment wrapper, action conventions, task families, the navigation env and closed-form rewards."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from env_runner.actions import one_hot_actions, scale_action, to_env_action, to_model_action, unscale_action
from env_runner.environment import Environment, make_task_family
from env_runner.families import TASK_FAMILIES
from env_runner.navigation import POINT_NAVIGATION_ID, register_point_navigation
from env_runner.rollouts import collect

FAMILY_IDS = list(TASK_FAMILIES)


@pytest.fixture(scope="module")
def families():
    return {env_id: make_task_family(env_id, max_episode_steps=15) for env_id in FAMILY_IDS}


# --- Environment ---------------------------------------------------------------------------------


def test_unknown_id_raises_naming_it_and_the_known_families():
    for make in (Environment, make_task_family):
        with pytest.raises(ValueError, match="NoSuchEnv-v0") as error:
            make("NoSuchEnv-v0")
        assert "Pendulum-v1" in str(error.value) and POINT_NAVIGATION_ID in str(error.value)


def test_wrong_action_shapes_raise_naming_expected_and_received():
    with Environment("Pendulum-v1", seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"expected .*\(1,\).*received shape \(2,\)"):
            env.step(np.zeros(2, dtype=np.float32))
    with Environment("Pendulum-v1", batch_size=3, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"expected .*\(3, 1\).*received shape \(3,\)"):
            env.step(np.zeros(3, dtype=np.float32))
    with Environment("CartPole-v1", batch_size=2, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match="integers"):
            env.step(np.array([0.0, 1.0]))


@pytest.mark.parametrize(
    ("env_id", "obs_dim", "action_dim"), [("Pendulum-v1", 3, 1), ("CartPole-v1", 4, 2), ("Acrobot-v1", 6, 3)]
)
def test_environment_shapes_single_and_batched(env_id, obs_dim, action_dim):
    with Environment(env_id, seed=0) as env:
        assert (env.obs_dim, env.action_dim) == (obs_dim, action_dim)
        obs, info = env.reset()
        assert obs.shape == (obs_dim,)
        obs, reward, terminated, truncated, _ = env.step(env.sample_action())
        assert obs.shape == (obs_dim,) and np.isscalar(reward)
    with Environment(env_id, batch_size=4, seed=0) as env:
        obs, _ = env.reset()
        assert obs.shape == (4, obs_dim)
        obs, reward, terminated, truncated, _ = env.step(torch.as_tensor(env.sample_action()))
        assert obs.shape == (4, obs_dim) and reward.shape == terminated.shape == truncated.shape == (4,)


def test_environment_seed_is_reproducible_and_task_is_applied():
    task = make_task_family("Pendulum-v1").sample(1, seed=3)[0]
    runs = []
    for _ in range(2):
        with Environment("Pendulum-v1", batch_size=2, seed=7, task=task) as env:
            obs, info = env.reset()
            trajectory = [obs] + [env.step(env.sample_action())[0] for _ in range(5)]
            runs.append(np.stack(trajectory))
            assert info["task_params"]["g"] == pytest.approx(task.params["g"])
    np.testing.assert_array_equal(runs[0], runs[1])


def test_environment_default_task_is_the_env_physics():
    with Environment("Pendulum-v1") as env:
        assert env.task.params == {"g": 10.0, "m": 1.0, "l": 1.0}


# --- actions --------------------------------------------------------------------------------------


def test_scale_unscale_round_trip_and_bounds():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    unit = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    scaled = scale_action(unit, space)
    torch.testing.assert_close(scaled, torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, 0.5]]))
    torch.testing.assert_close(unscale_action(scaled, space), unit)
    with pytest.raises(ValueError, match="finite bounds"):
        scale_action(unit, gym.spaces.Box(-np.inf, np.inf, shape=(2,)))


def test_discrete_actions_are_one_hot_for_models():
    space = gym.spaces.Discrete(3)
    model_actions = to_model_action(np.array([2, 0]), space)
    torch.testing.assert_close(model_actions, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(one_hot_actions(torch.tensor([2, 0]), 3), model_actions)
    np.testing.assert_array_equal(to_env_action(model_actions, space), [2, 0])


# --- task families --------------------------------------------------------------------------------


def _param_key(task):
    return tuple(sorted(task.params.items()))


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_sampling_is_reproducible_distinct_and_splits_disjoint(families, env_id):
    family = families[env_id]
    splits = {split: family.sample(6, seed=0, split=split) for split in ("train", "test", "ood")}
    assert family.sample(6, seed=0, split="train") == splits["train"]
    assert family.sample(6, seed=1, split="train") != splits["train"]
    keys = {split: {_param_key(task) for task in tasks} for split, tasks in splits.items()}
    assert all(len(split_keys) == 6 for split_keys in keys.values())
    assert not keys["train"] & keys["test"]
    assert not keys["train"] & keys["ood"]
    assert not keys["test"] & keys["ood"]


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_ood_tasks_lie_outside_the_training_ranges(families, env_id):
    family = families[env_id]
    for task in family.sample(20, seed=0, split="train") + family.sample(20, seed=0, split="test"):
        for name, (low, high) in family.train_ranges.items():
            assert low <= task.params[name] <= high
    for task in family.sample(20, seed=0, split="ood"):
        outside = [not low <= task.params[name] <= high for name, (low, high) in family.train_ranges.items()]
        assert any(outside)
        if env_id != POINT_NAVIGATION_ID:
            assert all(outside)


def test_different_tasks_give_different_dynamics():
    family = make_task_family("Pendulum-v1")
    next_obs = []
    for task in family.sample(2, seed=0):
        env = family.make_env(task, seed=0)
        _, info = env.reset()
        assert info["task_params"] == task.params
        env.unwrapped.state = np.array([0.5, 0.0])
        next_obs.append(env.step(np.array([1.0], dtype=np.float32))[0])
    assert not np.allclose(next_obs[0], next_obs[1])


def test_task_params_are_set_and_cartpole_derived_masses_recomputed(families):
    task = families["CartPole-v1"].sample(1, seed=0)[0]
    cartpole = families["CartPole-v1"].make_env(task).unwrapped
    for name, value in task.params.items():
        assert getattr(cartpole, name) == value
    assert cartpole.total_mass == pytest.approx(task.params["masspole"] + task.params["masscart"])
    assert cartpole.polemass_length == pytest.approx(task.params["masspole"] * task.params["length"])
    task = families["Acrobot-v1"].sample(1, seed=0)[0]
    acrobot = families["Acrobot-v1"].make_env(task).unwrapped
    com_of_link_2 = acrobot.LINK_COM_POS_2
    assert com_of_link_2 == pytest.approx(0.5 * task.params["LINK_LENGTH_2"])


def test_task_of_another_family_is_rejected(families):
    task = families["Pendulum-v1"].sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="Pendulum-v1"):
        families["CartPole-v1"].make_env(task)


def test_other_gymnasium_ids_are_single_task_families():
    with pytest.warns(UserWarning, match="no task distribution"):
        family = make_task_family("MountainCar-v0")
    tasks = family.sample(3, seed=0)
    assert [task.index for task in tasks] == [0, 1, 2] and all(task.params == {} for task in tasks)
    assert not family.has_reward_fn and not family.has_task_distribution
    with pytest.raises(ValueError, match="out-of-distribution"):
        family.sample(3, seed=0, split="ood")
    with pytest.raises(NotImplementedError, match="MountainCar-v0"):
        family.reward_fn(tasks[0])


# --- navigation -----------------------------------------------------------------------------------


def test_point_navigation_passes_check_env_and_registration_is_idempotent():
    register_point_navigation()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(gym.make(POINT_NAVIGATION_ID).unwrapped)


def test_point_navigation_hides_the_goal_and_lasts_100_steps():
    family = make_task_family(POINT_NAVIGATION_ID)
    task = family.sample(1, seed=0)[0]
    env = family.make_env(task, seed=0)
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs, np.zeros(2, dtype=np.float32))
    for step in range(1, 101):
        obs, reward, terminated, truncated, _ = env.step(np.array([0.5, -0.5], dtype=np.float32))
        assert not terminated and truncated == (step == 100)
    np.testing.assert_allclose(obs, [10.0, -10.0], rtol=1e-5)
    goal = np.array([task.params["goal_x"], task.params["goal_y"]])
    assert reward == pytest.approx(-np.linalg.norm(obs - goal), rel=1e-5)


# --- closed-form rewards --------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_reward_fn_matches_the_env_reward(families, env_id):
    family = families[env_id]
    assert family.has_reward_fn
    tasks = family.sample(2, seed=0)
    rollouts = collect(family, tasks, steps=40, seed=0)
    for row, task_index in enumerate(rollouts.task_index.tolist()):
        reward = family.reward_fn(tasks[task_index])(rollouts.obs[row], rollouts.action[row], rollouts.next_obs[row])
        torch.testing.assert_close(reward, rollouts.reward[row], rtol=1e-5, atol=1e-4)


def test_mountain_car_reward_fn_pays_the_goal_bonus(families):
    family = families["MountainCarContinuous-v0"]
    reward_fn = family.reward_fn(family.sample(1, seed=0)[0])
    obs = torch.tensor([[0.44, 0.02], [0.44, 0.001]])
    next_obs = torch.tensor([[0.46, 0.02], [0.441, 0.001]])
    action = torch.tensor([[0.5], [3.0]])
    torch.testing.assert_close(reward_fn(obs, action, next_obs), torch.tensor([100.0 - 0.025, -0.9]))
