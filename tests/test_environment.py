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
from env_runner.tasks import OOD_MARGIN, Task, check_disjoint

FAMILY_IDS = list(TASK_FAMILIES)
# families whose splits draw different tasks (HalfCheetahDir's two tasks are shared by every split: test_goal_families)
HELD_OUT_IDS = [env_id for env_id in FAMILY_IDS if TASK_FAMILIES[env_id].held_out_tasks]


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


@pytest.mark.parametrize("env_id", HELD_OUT_IDS)
def test_sampling_is_reproducible_distinct_and_splits_disjoint(families, env_id):
    family = families[env_id]
    splits = {split: family.sample(6, seed=0, split=split) for split in ("train", "val", "test", "ood")}
    assert family.sample(6, seed=0, split="train") == splits["train"]
    assert family.sample(6, seed=1, split="train") != splits["train"]
    check_disjoint(splits)
    assert len({task.key for tasks in splits.values() for task in tasks}) == 24


def test_check_disjoint_refuses_a_task_shared_by_two_splits(families):
    family = families["Pendulum-v1"]
    train, test = family.sample(3, seed=0, split="train"), family.sample(3, seed=0, split="test")
    shared = Task(family.env_id, "test", 3, dict(train[1].params))
    with pytest.raises(ValueError, match="same params as a train task"):
        check_disjoint({"train": train, "test": [*test, shared]})


@pytest.mark.parametrize("env_id", HELD_OUT_IDS)
def test_splits_hold_their_guarantees_in_coefficient_space_over_many_seeds(families, env_id):
    family = families[env_id]
    box = family.coefficient_ranges
    for seed in range(25):
        for split in ("train", "val", "test"):
            for task in family.sample(8, seed=seed, split=split):
                coefficients = family.coefficients(task)
                assert all(
                    low * (1 - 1e-9) - 1e-12 <= coefficients[name] <= high * (1 + 1e-9) + 1e-12
                    for name, (low, high) in box.items()
                ), (split, coefficients)
        for task in family.sample(8, seed=seed, split="ood"):
            assert family.ood_margin(task) >= OOD_MARGIN - 1e-9, family.coefficients(task)


def test_pendulum_coefficients_are_what_its_dynamics_depend_on(families):
    family = families["Pendulum-v1"]
    task = family.sample(1, seed=0)[0]
    g, m, length = task.params["g"], task.params["m"], task.params["l"]
    assert family.coefficients(task) == pytest.approx(
        {"gravity_term": 1.5 * g / length, "control_gain": 3.0 / (m * length**2)}
    )
    assert family.coefficients(family.default_task()) == pytest.approx({"gravity_term": 15.0, "control_gain": 3.0})


def test_ood_margin_is_zero_or_below_inside_the_box_and_grows_outside(families):
    family = families["MountainCarContinuous-v0"]
    inside, edge = Task(family.env_id, "x", 0, {"power": 0.0015}), Task(family.env_id, "x", 1, {"power": 0.002})
    outside = Task(family.env_id, "x", 2, {"power": 0.004})  # one box width (log scale) beyond the top
    assert family.ood_margin(inside) < 0 and family.ood_margin(edge) == pytest.approx(0.0, abs=1e-12)
    assert family.ood_margin(outside) == pytest.approx(1.0)


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


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_termination_fn_matches_the_env(env_id):
    family = make_task_family(env_id, max_episode_steps=200)
    tasks = family.sample(3, seed=0)
    rollouts = collect(family, tasks, steps=200, seed=0)
    if env_id == "CartPole-v1":
        assert rollouts.terminated.any()  # random actions drop the pole: the comparison covers terminations
    for row, task_index in enumerate(rollouts.task_index.tolist()):
        terminated = family.termination_fn(tasks[task_index])
        if terminated is None:
            assert not rollouts.terminated[row].any()
            continue
        predicted = terminated(rollouts.obs[row], rollouts.action[row], rollouts.next_obs[row])
        assert torch.equal(predicted, rollouts.terminated[row])


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_every_family_env_passes_gymnasium_check_env(families, env_id):
    family = families[env_id]
    with warnings.catch_warnings():  # the checker's advice on wrappers and action ranges is not a failure
        warnings.filterwarnings("ignore", message=".*(different from the unwrapped|symmetric and normalized)")
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(family.make_env(family.sample(1, seed=0, split="val")[0]), skip_render_check=True)


def test_mountain_car_reward_fn_pays_the_goal_bonus(families):
    family = families["MountainCarContinuous-v0"]
    reward_fn = family.reward_fn(family.sample(1, seed=0)[0])
    obs = torch.tensor([[0.44, 0.02], [0.44, 0.001]])
    next_obs = torch.tensor([[0.46, 0.02], [0.441, 0.001]])
    action = torch.tensor([[0.5], [3.0]])
    torch.testing.assert_close(reward_fn(obs, action, next_obs), torch.tensor([100.0 - 0.025, -0.9]))
