"""Planners (CEM, MPPI), learned and true dynamics, and episodes run by a planner in a real env."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from control.dynamics import LearnedDynamics
from control.episode import random_policy_return, run_episode
from control.planner import CEMPlanner, MPPIPlanner, PlannerConfig, rollout_returns
from control.true_dynamics import true_dynamics
from core.ssm import SSM
from env_runner.actions import one_hot_actions
from env_runner.environment import make_task_family
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.rollouts import collect
from env_runner.segments import Normalizer

SMALL = PlannerConfig(horizon=5, num_candidates=32, num_iterations=2)


@pytest.fixture(scope="module")
def pendulum():
    return make_task_family("Pendulum-v1")


@pytest.fixture(scope="module")
def pendulum_world_model(pendulum):
    """An untrained SSM world model with a normaliser fitted on random Pendulum transitions."""
    torch.manual_seed(0)
    task = pendulum.sample(1, seed=0, split="test")[0]
    normalizer = Normalizer.fit(collect(pendulum, [task], steps=100, seed=0))
    model = SSM(state_dim=16, input_dim=4, output_dim=3, hidden_dim=16)
    return task, model, normalizer


def planner_return(family, task, config, seed: int, max_steps: int, planner_cls=CEMPlanner) -> float:
    planner = planner_cls(true_dynamics(family, task), family.reward_fn(task), family.action_space, config, seed=0)
    return run_episode(family.make_env(task), planner, seed=seed, max_steps=max_steps).total_return


# --- true dynamics -------------------------------------------------------------------------------


def test_true_pendulum_matches_env_for_random_states_actions_and_tasks(pendulum):
    rng = np.random.default_rng(0)
    tasks = [pendulum.default_task(), *pendulum.sample(2, seed=1, split="test"), *pendulum.sample(1, 1, "ood")]
    for task in tasks:
        dynamics = true_dynamics(pendulum, task)
        env = pendulum.make_env(task)
        env.reset(seed=0)
        for _ in range(20):
            env.unwrapped.state = np.array([rng.uniform(-np.pi, np.pi), rng.uniform(-8, 8)])
            obs = env.unwrapped._get_obs()
            action = rng.uniform(-3, 3, size=1).astype(np.float32)  # beyond the bounds: clipped by both
            next_obs = env.step(action)[0]
            predicted, _ = dynamics.step(torch.from_numpy(obs)[None], torch.from_numpy(action)[None], torch.zeros(1, 0))
            np.testing.assert_allclose(predicted[0].numpy(), next_obs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "MountainCarContinuous-v0", POINT_NAVIGATION_ID])
def test_true_dynamics_match_env_along_random_trajectories(env_id):
    family = make_task_family(env_id)
    for task in family.sample(2, seed=0, split="test"):
        dynamics = true_dynamics(family, task)
        env = family.make_env(task, seed=0)
        obs, _ = env.reset(seed=0)
        for _ in range(30):
            action = env.action_space.sample()
            next_obs, _, terminated, _, _ = env.step(action)
            model_action = one_hot_actions(torch.tensor([action]), 2) if env_id == "CartPole-v1" else (
                torch.from_numpy(action)[None]
            )
            predicted, _ = dynamics.step(torch.from_numpy(obs)[None], model_action, dynamics.init_hidden(1))
            np.testing.assert_allclose(predicted[0].numpy(), next_obs, atol=1e-5, rtol=1e-5)
            if terminated:
                break
            obs = next_obs


def test_true_dynamics_unsupported_family_raises_naming_it():
    family = make_task_family("Acrobot-v1")
    with pytest.raises(NotImplementedError, match="Acrobot-v1.*Pendulum-v1"):
        true_dynamics(family, family.sample(1, seed=0)[0])


# --- planning with the true dynamics -------------------------------------------------------------


def test_cem_with_true_dynamics_beats_random_on_held_out_pendulum(pendulum):
    task = pendulum.sample(1, seed=0, split="test")[0]
    config = PlannerConfig(horizon=20, num_candidates=100, num_iterations=3)
    seeds = (0, 2)
    planned = np.mean([planner_return(pendulum, task, config, seed, max_steps=100) for seed in seeds])
    random = np.mean([random_policy_return(pendulum, task, seed, max_steps=100) for seed in seeds])
    assert planned > 0.5 * random, (planned, random)  # returns are negative: at most half the cost


@pytest.mark.parametrize("planner_cls", [CEMPlanner, MPPIPlanner])
def test_planners_with_true_dynamics_beat_random_on_point_navigation(planner_cls):
    family = make_task_family(POINT_NAVIGATION_ID)
    task = family.sample(1, seed=0, split="test")[0]
    config = PlannerConfig(horizon=15, num_candidates=64, num_iterations=3)
    planned = planner_return(family, task, config, seed=0, max_steps=40, planner_cls=planner_cls)
    random = np.mean([random_policy_return(family, task, seed, max_steps=40) for seed in range(3)])
    assert planned > 0.3 * random, (planned, random)


def test_discrete_cem_with_true_dynamics_balances_cartpole():
    family = make_task_family("CartPole-v1")
    task = family.sample(1, seed=0, split="test")[0]
    config = PlannerConfig(horizon=15, num_candidates=50, num_iterations=2)
    planned = planner_return(family, task, config, seed=0, max_steps=100)
    random = np.mean([random_policy_return(family, task, seed, max_steps=100) for seed in range(5)])
    assert planned == 100.0 and random < 50, (planned, random)


# --- learned dynamics ----------------------------------------------------------------------------


def test_learned_step_equals_model_on_normalised_inputs(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer)
    obs, action, hidden = torch.randn(4, 3), torch.randn(4, 1), torch.randn(4, 16)
    next_obs, next_hidden = dynamics.step(obs, action, hidden)
    y, expected_hidden = model(normalizer.inputs(obs, action), hidden)
    torch.testing.assert_close(next_obs, obs + normalizer.denormalize_targets(y))
    torch.testing.assert_close(next_hidden, expected_hidden)
    torch.testing.assert_close(dynamics.observe(obs, action, hidden), expected_hidden)


def test_learned_dynamics_use_given_params_and_none_restores_own(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    adapted = {"out_proj.bias": model.out_proj.bias + 1.0}
    dynamics = LearnedDynamics(model, normalizer, params=adapted)
    obs, action, hidden = torch.randn(4, 3), torch.randn(4, 1), torch.randn(4, 16)
    weights = {**dict(model.named_parameters()), **adapted}
    y, _ = functional_call(model, weights, (normalizer.inputs(obs, action), hidden))
    torch.testing.assert_close(dynamics.step(obs, action, hidden)[0], obs + normalizer.denormalize_targets(y))
    dynamics.set_params(None)
    own = LearnedDynamics(model, normalizer)
    torch.testing.assert_close(dynamics.step(obs, action, hidden)[0], own.step(obs, action, hidden)[0])


def test_rollout_from_hidden_state_equals_stepping_the_model_manually(pendulum_world_model, pendulum):
    task, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer)
    reward_fn = pendulum.reward_fn(task)
    hidden = dynamics.init_hidden(1)
    for _ in range(3):  # a state carried along a short real trajectory
        hidden = dynamics.observe(torch.randn(1, 3), torch.randn(1, 1), hidden)
    obs = torch.tensor([[0.0, 1.0, 0.5]])
    actions = torch.rand(6, 4, 1, generator=torch.Generator().manual_seed(0)) * 4 - 2
    returns = rollout_returns(dynamics, reward_fn, obs, hidden, actions, discount=0.9)
    for c in range(actions.shape[0]):
        o, h, expected = obs, hidden, 0.0
        for t in range(actions.shape[1]):
            y, h = model(normalizer.inputs(o, actions[c, t][None]), h)
            next_o = o + normalizer.denormalize_targets(y)
            expected += 0.9**t * reward_fn(o, actions[c, t][None], next_o).item()
            o = next_o
        assert returns[c].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    from_zero = rollout_returns(dynamics, reward_fn, obs, dynamics.init_hidden(1), actions, discount=0.9)
    assert not torch.allclose(returns, from_zero)


def test_run_episode_carries_the_real_hidden_state_and_swaps_params_and_state(pendulum_world_model, pendulum):
    task, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer)
    planner = CEMPlanner(dynamics, pendulum.reward_fn(task), pendulum.action_space, SMALL, seed=0)
    seen_hidden, transitions = [], []
    plan = planner.plan

    def recording_plan(obs, hidden):
        seen_hidden.append(hidden.clone())
        return plan(obs, hidden)

    planner.plan = recording_plan
    adapted = {"out_proj.bias": model.out_proj.bias.detach() + 0.5}
    handed_state = torch.full((1, model.state_dim), 0.25)

    def on_transition(obs, action, next_obs, episode_start):
        transitions.append((obs, action, next_obs, episode_start))
        return (adapted, handed_state) if len(transitions) == 2 else None

    episode = run_episode(pendulum.make_env(task), planner, seed=0, max_steps=4, on_transition=on_transition)
    assert len(episode) == 4 and episode.action.shape == (4, 1)
    torch.testing.assert_close(episode.next_obs[:-1], episode.obs[1:])
    assert [t[3] for t in transitions] == [True, False, False, False]
    assert [tuple(t[1].shape) for t in transitions] == [(1,)] * 4
    expected, weights = model.init_hidden(1), dict(model.named_parameters())
    for k, (obs, action, _, _) in enumerate(transitions[:-1]):
        torch.testing.assert_close(seen_hidden[k], expected)
        _, expected = functional_call(model, weights, (normalizer.inputs(obs[None], action[None]), expected))
        if k == 1:  # the hook's params and state apply from the next step on
            weights, expected = {**weights, **adapted}, handed_state
    torch.testing.assert_close(seen_hidden[-1], expected)
    torch.testing.assert_close(transitions[1][2], transitions[2][0])  # one step's next_obs is the next's obs


def test_discrete_planner_with_learned_ssm_returns_valid_int_actions():
    family = make_task_family("Acrobot-v1")
    task = family.sample(1, seed=0, split="test")[0]
    torch.manual_seed(0)
    normalizer = Normalizer.fit(collect(family, [task], steps=50, seed=0))
    model = SSM(state_dim=16, input_dim=family.obs_dim + 3, output_dim=family.obs_dim, hidden_dim=16)
    dynamics = LearnedDynamics(model, normalizer)
    planner = CEMPlanner(dynamics, family.reward_fn(task), family.action_space, SMALL, seed=0)
    env = family.make_env(task)
    obs, _ = env.reset(seed=0)
    hidden = dynamics.init_hidden(1)
    for _ in range(5):
        action = planner.plan(obs, hidden)
        assert type(action) is int and 0 <= action < 3
        hidden = dynamics.observe(torch.from_numpy(obs)[None], one_hot_actions(torch.tensor([action]), 3), hidden)
        obs = env.step(action)[0]


# --- reproducibility and warm start --------------------------------------------------------------


def plan_sequence(planner, observations):
    hidden = planner.dynamics.init_hidden(1)
    return [planner.plan(obs, hidden) for obs in observations]


def test_same_seed_same_actions_and_reset_restores_the_initial_distribution(pendulum):
    task = pendulum.sample(1, seed=0, split="test")[0]
    dynamics, reward_fn = true_dynamics(pendulum, task), pendulum.reward_fn(task)
    observations = [np.array([np.cos(th), np.sin(th), 0.3], dtype=np.float32) for th in (2.0, 2.1, 2.2)]
    for planner_cls in (CEMPlanner, MPPIPlanner):
        first, again, other = (
            planner_cls(dynamics, reward_fn, pendulum.action_space, SMALL, seed=seed) for seed in (0, 0, 1)
        )
        actions = plan_sequence(first, observations)
        assert all(a.dtype == np.float32 and a.shape == (1,) and -2 <= a[0] <= 2 for a in actions)
        np.testing.assert_array_equal(np.stack(actions), np.stack(plan_sequence(again, observations)))
        assert not np.array_equal(np.stack(actions), np.stack(plan_sequence(other, observations)))
        first.reset()
        first.generator.manual_seed(0)
        np.testing.assert_array_equal(plan_sequence(first, observations[:1])[0], actions[0])


# --- errors --------------------------------------------------------------------------------------


def test_bad_shapes_and_mismatches_raise_clear_errors(pendulum_world_model, pendulum):
    task, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer)
    with pytest.raises(ValueError, match=r"obs of shape \(N, 3\), received \(4, 2\)"):
        dynamics.step(torch.zeros(4, 2), torch.zeros(4, 1), torch.zeros(4, 16))
    with pytest.raises(ValueError, match=r"actions of shape \(4, 1\).*received \(4, 2\)"):
        dynamics.step(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="hidden state of batch 4"):
        dynamics.step(torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(1, 16))
    with pytest.raises(ValueError, match="not parameters"):
        dynamics.set_params({"no_such.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        dynamics.set_params({"out_proj.bias": torch.zeros(4)})

    planner = CEMPlanner(dynamics, pendulum.reward_fn(task), pendulum.action_space, SMALL)
    with pytest.raises(ValueError, match=r"one observation of shape \(3,\)"):
        planner.plan(np.zeros(4, dtype=np.float32), dynamics.init_hidden(1))
    with pytest.raises(ValueError, match="hidden state of one trajectory"):
        planner.plan(np.zeros(3, dtype=np.float32), dynamics.init_hidden(2))
    with pytest.raises(ValueError, match=r"actions \(C, H, action_dim\), received \(1, 3\), \(1, 16\) and \(5, 1\)"):
        rollout_returns(dynamics, pendulum.reward_fn(task), torch.zeros(1, 3), torch.zeros(1, 16), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="model action dim 2"):
        CEMPlanner(dynamics, pendulum.reward_fn(task), make_task_family("CartPole-v1").action_space, SMALL)
    cartpole = make_task_family("CartPole-v1")
    cartpole_dynamics = true_dynamics(cartpole, cartpole.default_task())
    with pytest.raises(ValueError, match="MPPIPlanner needs a Box"):
        MPPIPlanner(cartpole_dynamics, cartpole.reward_fn(cartpole.default_task()), cartpole.action_space)
    with pytest.raises(ValueError, match="elite_fraction"):
        PlannerConfig(elite_fraction=0.0)
    with pytest.raises(ValueError, match="horizon"):
        PlannerConfig(horizon=0)
    truth = CEMPlanner(true_dynamics(pendulum, task), pendulum.reward_fn(task), pendulum.action_space, SMALL)
    with pytest.raises(TypeError, match="no set_params"):
        run_episode(pendulum.make_env(task), truth, max_steps=1, on_transition=lambda *args: None)


def test_planner_raises_when_every_imagined_return_is_non_finite(pendulum_world_model, pendulum):
    task, model, normalizer = pendulum_world_model
    broken = {"out_proj.bias": torch.full_like(model.out_proj.bias, torch.nan)}
    planner = CEMPlanner(LearnedDynamics(model, normalizer, broken), pendulum.reward_fn(task), pendulum.action_space)
    with pytest.raises(RuntimeError, match="non-finite"):
        planner.plan(np.zeros(3, dtype=np.float32), model.init_hidden(1))
