"""Planners (CEM, iCEM, MPPI) acting for E episodes at once, learned and true dynamics, and `run_episodes`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from core.ssm import SSM
from env_runner.actions import one_hot_actions
from env_runner.environment import make_task_family
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.rollouts import collect
from env_runner.segments import Normalizer
from planning.dynamics import LearnedDynamics
from planning.episode import first_episode_returns, random_episode_returns, run_episodes
from planning.planner import CEMPlanner, ICEMPlanner, MPPIPlanner, PlannerConfig, colored_noise, rollout_returns
from planning.true_dynamics import true_dynamics

torch.set_num_threads(1)

SMALL = PlannerConfig(horizon=5, num_candidates=32, num_iterations=2)


@pytest.fixture(scope="module")
def pendulum():
    return make_task_family("Pendulum-v1")


@pytest.fixture(scope="module")
def pendulum_world_model(pendulum):
    """Two held-out Pendulum tasks and an untrained SSM world model with a normaliser fitted on random transitions."""
    torch.manual_seed(0)
    tasks = pendulum.sample(2, seed=0, split="test")
    normalizer = Normalizer.fit(collect(pendulum, tasks, steps=100, seed=0))
    model = SSM(state_dim=16, input_dim=4, output_dim=3, hidden_dim=16)
    return tasks, model, normalizer


def make_planner(family, tasks, dynamics, config=SMALL, planner_cls=CEMPlanner, seed=0):
    return planner_cls(
        dynamics,
        family.batch_reward_fn(tasks),
        family.action_space,
        config,
        seed=seed,
        num_episodes=len(tasks),
        termination_fn=family.batch_termination_fn(tasks),
    )


def planner_returns(family, tasks, config, seeds, steps, planner_cls=CEMPlanner) -> list[float]:
    """First-episode returns of one planner with the true dynamics acting in one env per task."""
    planner = make_planner(family, tasks, true_dynamics(family, list(tasks)), config, planner_cls)
    envs = [family.make_env(task) for task in tasks]
    try:
        return first_episode_returns(run_episodes(envs, planner, seeds, steps, until_first_done=True))
    finally:
        for env in envs:
            env.close()


def model_step(model, weights, normalizer, obs, action, hidden):
    """The world model's raw-unit step under `weights`: (next_obs, next_hidden)."""
    y, next_hidden = functional_call(model, weights, (normalizer.inputs(obs, action), hidden))
    return obs + normalizer.denormalize_targets(y), next_hidden


# --- true dynamics -------------------------------------------------------------------------------


def set_random_state(env, env_id: str, rng: np.random.Generator) -> np.ndarray:
    """Put the unwrapped env in a random state (float32-representable) and return its observation."""
    unwrapped = env.unwrapped
    if env_id == "Pendulum-v1":
        unwrapped.state = np.array([rng.uniform(-np.pi, np.pi), rng.uniform(-8, 8)])
        return unwrapped._get_obs()
    if env_id == "CartPole-v1":
        state = rng.uniform([-2.0, -2.0, -0.2, -2.0], [2.0, 2.0, 0.2, 2.0]).astype(np.float32)
        unwrapped.state, unwrapped.steps_beyond_terminated = state.astype(np.float64), None
        return state
    if env_id == "MountainCarContinuous-v0":  # includes states at the left wall, moving left
        state = rng.uniform([-1.25, -0.07], [0.5, 0.07]).astype(np.float32)
        unwrapped.state = state.astype(np.float64)
        return state
    position = rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    unwrapped._position = position.copy()
    return position


def random_action(env_id: str, rng: np.random.Generator):
    """An env action and its model action; Box actions reach beyond the bounds (both clip them)."""
    if env_id == "CartPole-v1":
        action = int(rng.integers(2))
        return action, one_hot_actions(torch.tensor(action), 2)
    bound = {"Pendulum-v1": 3.0, "MountainCarContinuous-v0": 1.5, POINT_NAVIGATION_ID: 0.15}[env_id]
    size = 2 if env_id == POINT_NAVIGATION_ID else 1
    action = rng.uniform(-bound, bound, size=size).astype(np.float32)
    return action, torch.from_numpy(action)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "MountainCarContinuous-v0", POINT_NAVIGATION_ID])
def test_batched_true_dynamics_of_different_tasks_match_each_tasks_env_on_random_states_and_actions(env_id):
    family = make_task_family(env_id)
    tasks = [family.default_task(), *family.sample(2, seed=1, split="test"), *family.sample(1, seed=1, split="ood")]
    dynamics = true_dynamics(family, tasks)
    rng = np.random.default_rng(0)
    candidates = 8
    obs, actions, expected = [], [], []
    for task in tasks:  # episode-major: the C rows of episode e follow those of episode e - 1
        with family.make_env(task) as env:
            env.reset(seed=0)
            for _ in range(candidates):
                obs.append(torch.from_numpy(set_random_state(env, env_id, rng)))
                env_action, model_action = random_action(env_id, rng)
                actions.append(model_action)
                expected.append(env.step(env_action)[0])
    predicted, hidden = dynamics.step(
        torch.stack(obs), torch.stack(actions), dynamics.init_hidden(len(tasks) * candidates)
    )
    assert predicted.dtype == torch.float32 and hidden.shape == (len(tasks) * candidates, 0)
    np.testing.assert_allclose(predicted.numpy(), np.stack(expected), atol=1e-5, rtol=1e-5)


def test_true_dynamics_unsupported_family_raises_naming_it():
    family = make_task_family("Acrobot-v1")
    with pytest.raises(NotImplementedError, match="Acrobot-v1.*Pendulum-v1"):
        true_dynamics(family, family.sample(1, seed=0))


# --- imagined returns ----------------------------------------------------------------------------


def test_cartpole_rollout_scores_only_the_rewards_up_to_the_terminating_step():
    family = make_task_family("CartPole-v1")
    task = family.default_task()
    state = np.array([0.0, 0.0, 0.19, 0.55], dtype=np.float32)  # pole close to the limit, falling outwards
    pushes = [1] * 10  # pushing right swings the pole back inside after it crossed the limit
    with family.make_env(task) as env:  # by hand: the env's return until it terminates
        env.reset(seed=0)
        env.unwrapped.state = state.astype(np.float64)
        by_hand, terminating_step = 0.0, None
        for step, push in enumerate(pushes, start=1):
            _, reward, terminated, _, _ = env.step(push)
            by_hand += reward
            if terminated:
                terminating_step = step
                break
    assert terminating_step == 3 and by_hand == 3.0  # CartPole pays 1 per step, the terminating one included

    dynamics = true_dynamics(family, [task])
    obs, hidden = torch.from_numpy(state)[None], dynamics.init_hidden(1)
    actions = one_hot_actions(torch.tensor(pushes), 2)[None, None]  # E = 1, C = 1, H = 10
    reward_fn, termination_fn = family.batch_reward_fn([task]), family.batch_termination_fn([task])
    alive = rollout_returns(dynamics, reward_fn, obs, hidden, actions, 1.0, termination_fn)
    assert alive.shape == (1, 1) and alive.item() == by_hand
    without_termination = rollout_returns(dynamics, reward_fn, obs, hidden, actions, 1.0)
    assert without_termination.item() > by_hand  # the pole comes back inside: those rewards are not earned


def test_rollout_returns_of_a_batch_of_tasks_equal_each_tasks_own_returns(pendulum):
    tasks = [pendulum.default_task(), *pendulum.sample(2, seed=3, split="ood")]
    generator = torch.Generator().manual_seed(0)
    theta = torch.rand(len(tasks), generator=generator) * 6 - 3
    obs = torch.stack([theta.cos(), theta.sin(), torch.randn(len(tasks), generator=generator)], dim=-1)
    actions = torch.rand(len(tasks), 7, 6, 1, generator=generator) * 4 - 2
    batched = rollout_returns(
        true_dynamics(pendulum, tasks), pendulum.batch_reward_fn(tasks), obs, torch.zeros(3, 0), actions, 0.9
    )
    assert batched.shape == (3, 7)
    for e, task in enumerate(tasks):
        alone = rollout_returns(
            true_dynamics(pendulum, [task]), pendulum.batch_reward_fn([task]), obs[e : e + 1], torch.zeros(1, 0),
            actions[e : e + 1], 0.9,
        )  # fmt: skip
        torch.testing.assert_close(batched[e], alone[0])
    shared = rollout_returns(
        true_dynamics(pendulum, [tasks[0]] * 3), pendulum.batch_reward_fn(tasks), obs, torch.zeros(3, 0), actions, 0.9
    )
    assert not torch.allclose(batched[1:], shared[1:])  # each episode really runs under its own task's constants


def test_point_navigation_returns_score_each_episode_against_its_own_goal():
    family = make_task_family(POINT_NAVIGATION_ID)
    tasks = family.sample(2, seed=0, split="test")
    obs = torch.zeros(2, 2)
    actions = torch.rand(2, 5, 4, 2, generator=torch.Generator().manual_seed(0)) * 0.2 - 0.1
    batched = rollout_returns(true_dynamics(family, tasks), family.batch_reward_fn(tasks), obs, obs[:, :0], actions)
    for e, task in enumerate(tasks):
        goal = torch.tensor([task.params["goal_x"], task.params["goal_y"]])
        positions = actions[e].cumsum(dim=1)  # (C, H, 2): the actions are within the speed limit
        torch.testing.assert_close(batched[e], -(positions - goal).norm(dim=-1).sum(dim=1))


def test_rollout_from_hidden_states_equals_stepping_the_model_manually(pendulum_world_model, pendulum):
    tasks, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    reward_fn = pendulum.batch_reward_fn(tasks)
    hidden = dynamics.init_hidden(2)
    for _ in range(3):  # states carried along two short real trajectories
        hidden = dynamics.observe(torch.randn(2, 3), torch.randn(2, 1), hidden)
    obs = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, -0.5]])
    actions = torch.rand(2, 6, 4, 1, generator=torch.Generator().manual_seed(0)) * 4 - 2
    returns = rollout_returns(dynamics, reward_fn, obs, hidden, actions, discount=0.9)
    weights = dict(model.named_parameters())
    for e in range(2):
        for c in range(actions.shape[1]):
            o, h, expected = obs[e : e + 1], hidden[e : e + 1], 0.0
            for t in range(actions.shape[2]):
                action = actions[e, c, t][None]
                next_o, h = model_step(model, weights, normalizer, o, action, h)
                expected += 0.9**t * reward_fn(o, action, next_o).item()
                o = next_o
            assert returns[e, c].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    from_zero = rollout_returns(dynamics, reward_fn, obs, dynamics.init_hidden(2), actions, discount=0.9)
    assert not torch.allclose(returns, from_zero)


# --- planning with the true dynamics -------------------------------------------------------------


def test_cem_with_true_dynamics_beats_random_on_held_out_pendulum_tasks(pendulum):
    def torque_to_gravity(task) -> float:
        coefficients = pendulum.coefficients(task)
        return 2.0 * coefficients["control_gain"] / coefficients["gravity_term"]

    # tasks whose torque can swing the pendulum up within 100 steps (the weakest need many more swings)
    tasks = [task for task in pendulum.sample(6, seed=0, split="test") if torque_to_gravity(task) > 0.2][:2]
    assert len(tasks) == 2
    config = PlannerConfig(horizon=20, num_candidates=100, num_iterations=3)
    seeds = [0, 2]
    planned = planner_returns(pendulum, tasks, config, seeds, steps=100)
    random = random_episode_returns(pendulum, tasks, seeds, max_steps=100)
    for planned_return, random_return in zip(planned, random, strict=True):
        assert planned_return > 0.5 * random_return, (planned, random)  # returns are negative: half the cost


@pytest.mark.parametrize("planner_cls", [CEMPlanner, ICEMPlanner, MPPIPlanner])
def test_planners_with_true_dynamics_beat_random_on_every_point_navigation_task(planner_cls):
    family = make_task_family(POINT_NAVIGATION_ID)
    tasks = family.sample(2, seed=0, split="test")
    config = PlannerConfig(horizon=15, num_candidates=64, num_iterations=3)
    planned = planner_returns(family, tasks, config, [0, 0], steps=40, planner_cls=planner_cls)
    for task, planned_return in zip(tasks, planned, strict=True):
        random = np.mean(random_episode_returns(family, [task] * 3, range(3), max_steps=40))
        assert planned_return > 0.3 * random, (task, planned_return, random)


# --- iCEM ------------------------------------------------------------------------------------------


def _lag_one_correlation(noise: torch.Tensor) -> float:
    """Correlation of consecutive steps of (N, H, A) noise, pooled over sequences and action entries."""
    return float(torch.corrcoef(torch.stack([noise[:, :-1].flatten(), noise[:, 1:].flatten()]))[0, 1])


@pytest.mark.parametrize("horizon", [10, 15])
def test_colored_noise_has_unit_variance_per_step_and_correlation_that_grows_with_the_exponent(horizon):
    generator = torch.Generator().manual_seed(0)
    correlations = []
    for exponent in (0.0, 1.0, 2.0):
        noise = colored_noise((20000, horizon, 2), exponent, generator)
        assert noise.shape == (20000, horizon, 2)
        np.testing.assert_allclose(noise.var(dim=0).numpy(), 1.0, atol=0.06)
        np.testing.assert_allclose(noise.mean(dim=0).numpy(), 0.0, atol=0.04)
        correlations.append(_lag_one_correlation(noise))
    assert abs(correlations[0]) < 0.02, correlations
    assert correlations[0] + 0.2 < correlations[1] < correlations[2] - 0.1, correlations
    entries = noise.permute(2, 0, 1)  # action entries are independent series
    assert abs(float(torch.corrcoef(entries.flatten(1))[0, 1])) < 0.02


def test_colored_noise_with_exponent_zero_is_torch_randn():
    drawn = colored_noise((3, 5, 2), 0.0, torch.Generator().manual_seed(4))
    torch.testing.assert_close(drawn, torch.randn((3, 5, 2), generator=torch.Generator().manual_seed(4)))


class RecordingDynamics:
    """Wraps dynamics; records every batch of candidate actions the planner scores (one entry per rollout step)."""

    def __init__(self, dynamics):
        self.inner, self.actions = dynamics, []
        self.obs_dim, self.action_dim, self.device = dynamics.obs_dim, dynamics.action_dim, dynamics.device

    def step(self, obs, action, hidden):
        self.actions.append(action.clone())
        return self.inner.step(obs, action, hidden)


def test_icem_without_color_decay_or_kept_elites_samples_what_cem_samples(pendulum):
    tasks = pendulum.sample(2, seed=0, split="test")
    base = PlannerConfig(horizon=6, num_candidates=20, num_iterations=3)
    plain = PlannerConfig(
        method="icem",
        horizon=6,
        num_candidates=20,
        num_iterations=3,
        noise_exponent=0.0,
        population_decay=1.0,
        kept_elite_fraction=0.0,
    )
    observations = pendulum_observations((2.0,))[0]
    sampled = {}
    for name, config, planner_cls in (("cem", base, CEMPlanner), ("icem", plain, ICEMPlanner)):
        recording = RecordingDynamics(true_dynamics(pendulum, tasks))
        planner = make_planner(pendulum, tasks, recording, config, planner_cls)
        planner.plan(observations, recording.inner.init_hidden(2))
        # (iteration, H, E, n, A); iCEM's last iteration scores the mean after its 20 samples
        sampled[name] = torch.stack([step.reshape(2, -1, 1)[:, :20] for step in recording.actions]).reshape(3, 6, 2, 20)
    torch.testing.assert_close(sampled["icem"], sampled["cem"], rtol=0, atol=0)


def test_icem_shrinks_its_population_keeps_elites_and_acts_with_the_best_sequence_it_scored(pendulum):
    tasks = pendulum.sample(2, seed=0, split="test")
    config = PlannerConfig(method="icem", horizon=6, num_candidates=40, num_iterations=3, elite_fraction=0.25)
    assert [config.population(i) for i in range(3)] == [40, 32, 26]
    assert config.num_elites == 10 and config.num_kept_elites == 3
    recording = RecordingDynamics(true_dynamics(pendulum, tasks))
    planner = make_planner(pendulum, tasks, recording, config, ICEMPlanner)
    observations = pendulum_observations((2.0, 2.1))
    hidden = recording.inner.init_hidden(2)
    action = planner.plan(observations[0], hidden)
    counts = [batch.shape[0] // 2 for batch in recording.actions[::6]]
    assert counts == [40 + 3, 32 + 3, 26 + 1 + 3], counts  # samples (+ the mean last) + kept elites
    scored = torch.cat([torch.stack(recording.actions[i * 6 : i * 6 + 6], 1).reshape(2, -1, 6) for i in range(3)], 1)
    returns = rollout_returns(
        recording.inner, pendulum.batch_reward_fn(tasks), torch.as_tensor(observations[0]), hidden, scored[..., None]
    )
    first_step = returns.argmax(dim=1)
    np.testing.assert_allclose(action[:, 0], scored[torch.arange(2), first_step, 0].numpy(), rtol=0, atol=1e-6)
    recording.actions.clear()
    planner.plan(observations[1], hidden)  # the next step's first iteration scores the kept elites, shifted
    kept = torch.stack(recording.actions[:6], 1).reshape(2, -1, 6)[:, -3:]  # (E, 3, H)
    np.testing.assert_array_equal(kept[:, :, -1].numpy(), 0.0)  # the appended step: the middle of the Box
    assert torch.isin(kept[:, :, :-1].flatten(), scored.flatten()).all()


def test_discrete_cem_with_true_dynamics_balances_cartpole_on_every_task():
    family = make_task_family("CartPole-v1")
    tasks = family.sample(2, seed=0, split="test")
    config = PlannerConfig(horizon=15, num_candidates=50, num_iterations=2)
    planned = planner_returns(family, tasks, config, [0, 1], steps=100)
    assert planned == [100.0, 100.0], planned
    for task in tasks:
        random = np.mean(random_episode_returns(family, [task] * 5, range(5), max_steps=100))
        assert random < 50, (task, random)


def test_random_episode_returns_are_seeded_and_stop_at_the_end_of_the_first_episode(pendulum):
    tasks = pendulum.sample(2, seed=0, split="test")
    returns = random_episode_returns(pendulum, tasks, [0, 1], max_steps=3)
    assert returns == random_episode_returns(pendulum, tasks, [0, 1], max_steps=3)
    assert returns != random_episode_returns(pendulum, tasks, [2, 3], max_steps=3)
    short = make_task_family("Pendulum-v1", max_episode_steps=3)
    assert random_episode_returns(short, tasks, [0, 1], max_steps=100) == returns


# --- learned dynamics ----------------------------------------------------------------------------


def test_learned_step_equals_model_on_normalised_inputs(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    obs, action, hidden = torch.randn(4, 3), torch.randn(4, 1), torch.randn(4, 16)
    next_obs, next_hidden = dynamics.step(obs, action, hidden)
    y, expected_hidden = model(normalizer.inputs(obs, action), hidden)
    torch.testing.assert_close(next_obs, obs + normalizer.denormalize_targets(y))
    torch.testing.assert_close(next_hidden, expected_hidden)
    torch.testing.assert_close(dynamics.observe(obs, action, hidden), expected_hidden)


def test_learned_dynamics_use_shared_params_and_none_restores_own(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    adapted = {"in_proj.bias": model.in_proj.bias + 1.0, "out_proj.bias": model.out_proj.bias + 1.0}
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    dynamics.set_params(adapted)
    obs, action, hidden = torch.randn(4, 3), torch.randn(4, 1), torch.randn(4, 16)
    expected = model_step(model, {**dict(model.named_parameters()), **adapted}, normalizer, obs, action, hidden)
    torch.testing.assert_close(dynamics.step(obs, action, hidden), expected)
    dynamics.set_params(None)
    own = model_step(model, dict(model.named_parameters()), normalizer, obs, action, hidden)
    torch.testing.assert_close(dynamics.step(obs, action, hidden), own)
    assert not torch.allclose(own[0], expected[0]) and not torch.allclose(own[1], expected[1])


def test_stacked_per_episode_params_equal_running_each_episode_with_its_own_params(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    episodes, candidates = 3, 4
    generator = torch.Generator().manual_seed(0)
    stacked = {
        name: model.get_parameter(name).detach()
        + 0.3 * torch.randn(episodes, *model.get_parameter(name).shape, generator=generator)
        for name in ("in_proj.weight", "in_proj.bias", "out_proj.bias")
    }
    dynamics = LearnedDynamics(model, normalizer, num_episodes=episodes)
    dynamics.set_params(stacked, stacked=True)
    n = episodes * candidates
    obs = torch.randn(n, 3, generator=generator)
    action = torch.randn(n, 1, generator=generator)
    hidden = torch.randn(n, 16, generator=generator)
    next_obs, next_hidden = dynamics.step(obs, action, hidden)
    for e in range(episodes):
        rows = slice(e * candidates, (e + 1) * candidates)
        alone = LearnedDynamics(model, normalizer, num_episodes=1)
        alone.set_params({name: value[e] for name, value in stacked.items()})
        expected = alone.step(obs[rows], action[rows], hidden[rows])
        torch.testing.assert_close(next_obs[rows], expected[0])
        torch.testing.assert_close(next_hidden[rows], expected[1])
        first = slice(rows.start, rows.start + 1)  # one real trajectory per episode: observe, C = 1
        observed = dynamics.observe(obs[::candidates], action[::candidates], hidden[::candidates])
        torch.testing.assert_close(observed[e : e + 1], alone.observe(obs[first], action[first], hidden[first]))
    dynamics.set_params(None)
    own = model_step(model, dict(model.named_parameters()), normalizer, obs, action, hidden)
    torch.testing.assert_close(dynamics.step(obs, action, hidden), own)
    assert not torch.allclose(own[0], next_obs)


def test_learned_dynamics_append_each_episodes_context_to_its_inputs(pendulum_world_model):
    _, _, normalizer = pendulum_world_model
    torch.manual_seed(1)
    model = SSM(state_dim=8, input_dim=4 + 2, output_dim=3, hidden_dim=8)
    context = torch.tensor([[1.0, -1.0], [0.5, 2.0]])
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2, context=context)
    obs, action, hidden = torch.randn(6, 3), torch.randn(6, 1), torch.randn(6, 8)
    x = torch.cat([normalizer.inputs(obs, action), context.repeat_interleave(3, dim=0)], dim=-1)
    y, expected_hidden = model(x, hidden)
    next_obs, next_hidden = dynamics.step(obs, action, hidden)
    torch.testing.assert_close(next_obs, obs + normalizer.denormalize_targets(y))
    torch.testing.assert_close(next_hidden, expected_hidden)


# --- run_episodes ---------------------------------------------------------------------------------


def record_plans(planner) -> list[torch.Tensor]:
    """Make `planner.plan` record the hidden states it is given."""
    seen, plan = [], planner.plan

    def recording_plan(obs, hidden):
        seen.append(hidden.clone())
        return plan(obs, hidden)

    planner.plan = recording_plan
    return seen


def test_run_episodes_carries_real_hidden_states_and_the_hook_swaps_weights_and_states(pendulum_world_model, pendulum):
    tasks, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    planner = make_planner(pendulum, tasks, dynamics)
    seen_hidden, transitions = record_plans(planner), []
    own = {name: value.detach() for name, value in model.named_parameters()}
    shift = torch.tensor([0.5, -0.5])[:, None]
    adapted = {"in_proj.bias": own["in_proj.bias"] + shift, "out_proj.bias": own["out_proj.bias"] - shift}
    handed_state = torch.stack([torch.full((model.state_dim,), 0.25), torch.full((model.state_dim,), -0.25)])

    def on_transition(obs, action, next_obs, reward, episode_start, hidden_before):
        transitions.append(
            (obs.clone(), action.clone(), next_obs.clone(), reward.clone(), episode_start.clone(), hidden_before)
        )
        return (adapted, handed_state) if len(transitions) == 2 else None

    envs = [pendulum.make_env(task) for task in tasks]
    rollouts = run_episodes(envs, planner, [0, 1], steps=4, on_transition=on_transition)
    assert rollouts.obs.shape == (2, 4, 3) and rollouts.action.shape == (2, 4, 1) and rollouts.reward.shape == (2, 4)
    assert rollouts.tasks == tuple(tasks) and rollouts.task_index.tolist() == [0, 1]
    torch.testing.assert_close(rollouts.next_obs[:, :-1], rollouts.obs[:, 1:])
    assert rollouts.episode_start.tolist() == [[True, False, False, False]] * 2
    assert [t[4].tolist() for t in transitions] == [[True, True]] + [[False, False]] * 3
    for k, (obs, action, next_obs, reward, _, _) in enumerate(transitions):
        assert obs.shape == (2, 3) and action.shape == (2, 1)
        recorded = (rollouts.obs[:, k], rollouts.action[:, k], rollouts.next_obs[:, k], rollouts.reward[:, k])
        torch.testing.assert_close((obs, action, next_obs, reward), recorded)

    expected, weights = model.init_hidden(2), [own, own]
    for k, (obs, action, _, _, _, hidden_before) in enumerate(transitions):
        torch.testing.assert_close(seen_hidden[k], expected)  # the planner plans from the real state
        torch.testing.assert_close(hidden_before, expected)  # the hook sees the state that entered the step
        expected = torch.cat(
            [model_step(model, weights[e], normalizer, obs[e : e + 1], action[e : e + 1], expected[e : e + 1])[1]
             for e in range(2)]
        )  # fmt: skip
        if k == 1:  # the hook's params and states apply from the next step on
            weights = [{**own, **{name: value[e] for name, value in adapted.items()}} for e in range(2)]
            expected = handed_state
    assert len(seen_hidden) == 4
    probe = (torch.randn(2, 3), torch.randn(2, 1), torch.randn(2, model.state_dim))
    imagined = dynamics.step(*probe)  # the planner's dynamics keep the hook's per-episode weights
    for e in range(2):
        torch.testing.assert_close(
            (imagined[0][e : e + 1], imagined[1][e : e + 1]),
            model_step(model, weights[e], normalizer, *(tensor[e : e + 1] for tensor in probe)),
        )


def test_run_episodes_resets_an_env_whose_episode_ended_and_marks_the_restart(pendulum_world_model):
    tasks, model, normalizer = pendulum_world_model
    families = [make_task_family("Pendulum-v1", max_episode_steps=limit) for limit in (3, 5)]
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    planner = make_planner(families[0], tasks, dynamics)
    seen_hidden, resets, clear_plans = record_plans(planner), [], planner.clear_plans

    def recording_clear_plans(episodes=None):
        resets.append(None if episodes is None else episodes.tolist())
        clear_plans(episodes)

    planner.clear_plans = recording_clear_plans
    seeds = [3, 4]
    envs = [family.make_env(task) for family, task in zip(families, tasks, strict=True)]
    rollouts = run_episodes(envs, planner, seeds, steps=7)

    assert rollouts.steps == 7 and not rollouts.terminated.any()
    assert rollouts.episode_start.tolist() == [[1, 0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 1, 0]]
    # time limits end episodes at 2, 5 (row 0) and 4 (row 1); the row's last step cuts the episode it is in
    assert rollouts.truncated.tolist() == [[0, 0, 1, 0, 0, 1, 1], [0, 0, 0, 0, 1, 0, 1]]
    assert resets == [None, [True, False], [False, True], [True, False]]  # the planner forgets ended episodes
    for t, hidden in enumerate(seen_hidden):  # a new episode starts from the initial state, the other row keeps its
        is_initial = (hidden == model.init_hidden(2)).all(dim=1)
        assert is_initial.tolist() == rollouts.episode_start[:, t].tolist()
    for e, (family, task) in enumerate(zip(families, tasks, strict=True)):  # every row replays in a twin env
        with family.make_env(task) as twin:
            obs = twin.reset(seed=seeds[e])[0]
            for t in range(rollouts.steps):
                np.testing.assert_array_equal(rollouts.obs[e, t].numpy(), obs)
                next_obs, reward, terminated, truncated, _ = twin.step(rollouts.action[e, t].numpy())
                np.testing.assert_array_equal(rollouts.next_obs[e, t].numpy(), next_obs)  # the real final obs
                assert rollouts.reward[e, t].item() == pytest.approx(reward, rel=1e-6)
                obs = twin.reset()[0] if terminated or truncated else next_obs


def test_run_episodes_until_first_done_stops_once_every_env_finished_its_first_episode(pendulum):
    tasks = pendulum.sample(2, seed=0, split="test")
    families = [make_task_family("Pendulum-v1", max_episode_steps=limit) for limit in (3, 5)]
    planner = make_planner(pendulum, tasks, true_dynamics(pendulum, tasks))
    envs = [family.make_env(task) for family, task in zip(families, tasks, strict=True)]
    rollouts = run_episodes(envs, planner, [0, 1], steps=10, until_first_done=True)
    assert rollouts.steps == 5
    assert rollouts.truncated.tolist() == [[0, 0, 1, 0, 1], [0, 0, 0, 0, 1]]
    expected = [rollouts.reward[0, :3].sum().item(), rollouts.reward[1].sum().item()]
    assert first_episode_returns(rollouts) == pytest.approx(expected)


def test_first_episode_returns_stop_at_the_first_termination():
    family = make_task_family("CartPole-v1")
    tasks = family.sample(2, seed=0, split="test")
    planner = make_planner(family, tasks, true_dynamics(family, tasks), PlannerConfig(horizon=2, num_candidates=2))
    planner.plan = lambda obs, hidden: np.zeros(2, dtype=np.int64)  # always push left: the pole falls
    envs = [family.make_env(task) for task in tasks]
    rollouts = run_episodes(envs, planner, [0, 1], steps=60)
    first_end = [int(row.nonzero()[0]) for row in rollouts.terminated]
    assert all(end < 30 for end in first_end) and rollouts.episode_start[:, 1:].any(dim=1).all()
    assert first_episode_returns(rollouts) == [float(end + 1) for end in first_end]
    assert rollouts.truncated[:, -1].tolist() == (~rollouts.terminated[:, -1]).tolist()


# --- planner outputs, reproducibility and warm start ----------------------------------------------


def plan_sequence(planner, observations):
    hidden = planner.dynamics.init_hidden(planner.num_episodes)
    return [planner.plan(obs, hidden) for obs in observations]


def pendulum_observations(thetas) -> list[np.ndarray]:
    """One (2, 3) batch per step: two episodes at different angles."""
    return [
        np.array([[np.cos(th), np.sin(th), 0.3], [np.cos(-th), np.sin(-th), -0.1]], dtype=np.float32) for th in thetas
    ]


@pytest.mark.parametrize("planner_cls", [CEMPlanner, ICEMPlanner, MPPIPlanner])
def test_same_seed_same_actions_and_reset_restores_the_initial_distribution(pendulum, planner_cls):
    tasks = pendulum.sample(2, seed=0, split="test")
    dynamics = true_dynamics(pendulum, tasks)
    observations = pendulum_observations((2.0, 2.1, 2.2))
    first, again, other = (make_planner(pendulum, tasks, dynamics, planner_cls=planner_cls, seed=s) for s in (0, 0, 1))
    actions = plan_sequence(first, observations)
    assert all(a.dtype == np.float32 and a.shape == (2, 1) and (np.abs(a) <= 2).all() for a in actions)
    np.testing.assert_array_equal(np.stack(actions), np.stack(plan_sequence(again, observations)))
    assert not np.array_equal(np.stack(actions), np.stack(plan_sequence(other, observations)))
    first.clear_plans()
    first.generator.manual_seed(0)
    np.testing.assert_array_equal(plan_sequence(first, observations[:1])[0], actions[0])


@pytest.mark.parametrize(
    ("env_id", "planner_cls"),
    [
        ("Pendulum-v1", CEMPlanner),
        ("Pendulum-v1", ICEMPlanner),
        ("Pendulum-v1", MPPIPlanner),
        ("CartPole-v1", CEMPlanner),
    ],
)
def test_reset_with_a_mask_forgets_the_warm_start_of_the_masked_episodes_only(env_id, planner_cls):
    family = make_task_family(env_id)
    tasks = family.sample(2, seed=0, split="test")
    dynamics = true_dynamics(family, tasks)
    if env_id == "Pendulum-v1":
        observations = pendulum_observations((2.0, 2.1))
    else:
        observations = [np.array([[0.0, 0.1, 0.05, -0.2], [0.1, -0.1, -0.05, 0.3]], dtype=np.float32)] * 2
    hidden = dynamics.init_hidden(2)
    actions = {}
    for name, mask in (("masked", torch.tensor([True, False])), ("all", None), ("none", "skip")):
        planner = make_planner(family, tasks, dynamics, PlannerConfig(horizon=5, num_candidates=8), planner_cls)
        planner.plan(observations[0], hidden)
        if mask != "skip":
            planner.clear_plans(mask)
        actions[name] = planner.plan(observations[1], hidden)
    assert actions["masked"][0].tolist() == actions["all"][0].tolist()
    assert actions["masked"][1].tolist() == actions["none"][1].tolist()
    if env_id == "Pendulum-v1":  # continuous actions: the warm start visibly changes the next plan
        assert actions["all"][0].tolist() != actions["none"][0].tolist()


def test_discrete_planner_with_learned_ssm_returns_valid_int_actions_for_every_episode():
    family = make_task_family("Acrobot-v1")
    tasks = family.sample(2, seed=0, split="test")
    torch.manual_seed(0)
    normalizer = Normalizer.fit(collect(family, tasks, steps=50, seed=0))
    model = SSM(state_dim=16, input_dim=family.obs_dim + 3, output_dim=family.obs_dim, hidden_dim=16)
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    planner = make_planner(family, tasks, dynamics)
    envs = [family.make_env(task) for task in tasks]
    obs = np.stack([env.reset(seed=seed)[0] for seed, env in enumerate(envs)])
    hidden = dynamics.init_hidden(2)
    for _ in range(5):
        action = planner.plan(obs, hidden)
        assert action.dtype == np.int64 and action.shape == (2,) and ((action >= 0) & (action < 3)).all()
        hidden = dynamics.observe(torch.from_numpy(obs), one_hot_actions(torch.from_numpy(action), 3), hidden)
        obs = np.stack([env.step(int(a))[0] for env, a in zip(envs, action, strict=True)])


# --- errors --------------------------------------------------------------------------------------


def test_bad_shapes_and_mismatches_raise_clear_errors(pendulum_world_model, pendulum):
    tasks, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
    with pytest.raises(ValueError, match=r"obs of shape \(N, 3\), received \(4, 2\)"):
        dynamics.step(torch.zeros(4, 2), torch.zeros(4, 1), torch.zeros(4, 16))
    with pytest.raises(ValueError, match=r"actions of shape \(4, 1\).*received \(4, 2\)"):
        dynamics.step(torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="hidden state of batch 4"):
        dynamics.step(torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(1, 16))
    with pytest.raises(ValueError, match="batch of 3 rows does not split into 2 episodes"):
        dynamics.step(torch.zeros(3, 3), torch.zeros(3, 1), torch.zeros(3, 16))
    with pytest.raises(ValueError, match="batch of 3 rows does not split into 2 episodes"):
        true_dynamics(pendulum, tasks).step(torch.zeros(3, 3), torch.zeros(3, 1), torch.zeros(3, 0))
    with pytest.raises(ValueError, match="not parameters"):
        dynamics.set_params({"no_such.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        dynamics.set_params({"out_proj.bias": torch.zeros(4)})
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\), received \(3,\)"):
        dynamics.set_params({"out_proj.bias": torch.zeros(3)}, stacked=True)
    with pytest.raises(ValueError, match=r"context must be \(2, K\)"):
        LearnedDynamics(model, normalizer, num_episodes=2, context=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no init_hidden"):
        LearnedDynamics(nn.Linear(4, 3), normalizer)

    planner = make_planner(pendulum, tasks, dynamics)
    with pytest.raises(ValueError, match=r"observations of shape \(2, 3\), received \(3,\)"):
        planner.plan(np.zeros(3, dtype=np.float32), dynamics.init_hidden(2))
    with pytest.raises(ValueError, match=r"observations of shape \(2, 3\), received \(1, 3\)"):
        planner.plan(np.zeros((1, 3), dtype=np.float32), dynamics.init_hidden(2))
    with pytest.raises(ValueError, match="hidden states of 2 trajectories"):
        planner.plan(np.zeros((2, 3), dtype=np.float32), dynamics.init_hidden(1))
    with pytest.raises(ValueError, match=r"actions \(E, C, H, action_dim\), received \(1, 3\), \(1, 16\) and \(5, 1\)"):
        rollout_returns(
            dynamics, pendulum.reward_fn(tasks[0]), torch.zeros(1, 3), torch.zeros(1, 16), torch.zeros(5, 1)
        )
    with pytest.raises(ValueError, match=r"received \(2, 3\), \(2, 16\) and \(1, 4, 5, 1\)"):
        rollout_returns(dynamics, pendulum.reward_fn(tasks[0]), torch.zeros(2, 3), torch.zeros(2, 16),
                        torch.zeros(1, 4, 5, 1))  # fmt: skip
    with pytest.raises(ValueError, match="model action dim 2"):
        CEMPlanner(dynamics, pendulum.reward_fn(tasks[0]), make_task_family("CartPole-v1").action_space, SMALL)
    with pytest.raises(ValueError, match="num_episodes must be >= 1"):
        CEMPlanner(dynamics, pendulum.reward_fn(tasks[0]), pendulum.action_space, SMALL, num_episodes=0)
    cartpole = make_task_family("CartPole-v1")
    cartpole_tasks = [cartpole.default_task()]
    with pytest.raises(ValueError, match="MPPIPlanner needs a Box"):
        MPPIPlanner(
            true_dynamics(cartpole, cartpole_tasks), cartpole.batch_reward_fn(cartpole_tasks), cartpole.action_space
        )
    with pytest.raises(ValueError, match=r"^elite_fraction must be a finite number in \(0, 1\], got 0.0"):
        PlannerConfig(elite_fraction=0.0)
    with pytest.raises(ValueError, match="^horizon must be an int >= 1, got 0"):
        PlannerConfig(horizon=0)
    with pytest.raises(ValueError, match="^init_std must be a finite number > 0, got nan"):
        PlannerConfig(init_std=float("nan"))

    envs = [pendulum.make_env(task) for task in tasks]
    truth = make_planner(pendulum, tasks, true_dynamics(pendulum, tasks))
    with pytest.raises(TypeError, match="no set_params"):
        run_episodes(envs, truth, [0, 1], 1, on_transition=lambda *args: None)
    with pytest.raises(ValueError, match="1 envs and 2 seeds for a planner of 2 episodes"):
        run_episodes(envs[:1], truth, [0, 1], 1)
    with pytest.raises(ValueError, match="2 envs and 1 seeds"):
        run_episodes(envs, truth, [0], 1)


def test_planner_raises_when_every_imagined_return_of_an_episode_is_non_finite(pendulum_world_model, pendulum):
    tasks, model, normalizer = pendulum_world_model
    bias = model.out_proj.bias.detach()
    for broken_episode in (0, 1):  # one diverging episode is enough, whichever it is
        stacked_bias = torch.stack([bias, bias])
        stacked_bias[broken_episode] = torch.nan
        dynamics = LearnedDynamics(model, normalizer, num_episodes=2)
        dynamics.set_params({"out_proj.bias": stacked_bias}, stacked=True)
        planner = make_planner(pendulum, tasks, dynamics)
        with pytest.raises(RuntimeError, match="non-finite"):
            planner.plan(np.zeros((2, 3), dtype=np.float32), model.init_hidden(2))


def test_mountain_car_planning_reward_adds_only_the_change_in_energy():
    family = make_task_family("MountainCarContinuous-v0")
    tasks = family.sample(2, seed=0, split="val")
    obs, next_obs = torch.tensor([[[-0.5, 0.01]], [[0.1, -0.02]]]), torch.tensor([[[-0.49, 0.012]], [[0.08, -0.021]]])
    action = torch.tensor([[[0.5]], [[-1.0]]])
    extra = family.planning_reward_fn(tasks)(obs, action, next_obs) - family.batch_reward_fn(tasks)(
        obs, action, next_obs
    )
    energy = 0.5 * next_obs[..., 1] ** 2 + 0.0025 / 3 * torch.sin(3 * next_obs[..., 0])
    energy = energy - (0.5 * obs[..., 1] ** 2 + 0.0025 / 3 * torch.sin(3 * obs[..., 0]))
    torch.testing.assert_close(extra, 3000.0 * energy)


def test_cem_on_the_true_mountain_car_reaches_the_goal_with_the_shaped_planning_reward():
    family = make_task_family("MountainCarContinuous-v0")
    tasks = family.sample(2, seed=0, split="val")
    planner = CEMPlanner(
        true_dynamics(family, tasks),
        family.planning_reward_fn(tasks),
        family.action_space,
        PlannerConfig(horizon=15, num_candidates=200, num_iterations=3),
        seed=0,
        num_episodes=2,
        termination_fn=family.batch_termination_fn(tasks),
    )
    envs = [family.make_env(task) for task in tasks]
    rollouts = run_episodes(envs, planner, [1, 2], 200, until_first_done=True)
    assert rollouts.terminated.any(dim=1).all()  # both cars reach the flag within 200 steps
    assert min(first_episode_returns(rollouts)) > 80.0


def test_imagined_states_far_outside_the_training_data_stay_finite(pendulum_world_model):
    _, model, normalizer = pendulum_world_model
    dynamics = LearnedDynamics(model, normalizer, num_episodes=1)
    far = torch.full((4, 3), 1e30)  # a runaway imagined state
    next_obs, hidden = dynamics.step(far, torch.zeros(4, 1), dynamics.init_hidden(4))
    assert torch.isfinite(hidden).all() and torch.isfinite(next_obs - far).all()
    near = torch.tensor([[1.0, 0.0, 0.5]])  # inside the data: unchanged by the limit
    expected, _ = model(normalizer.inputs(near, torch.zeros(1, 1)), model.init_hidden(1))
    torch.testing.assert_close(
        dynamics.step(near, torch.zeros(1, 1), dynamics.init_hidden(1))[0],
        near + normalizer.denormalize_targets(expected),
    )


def test_the_first_explore_steps_of_every_episode_act_uniformly_at_random():
    from env_runner.actions import uniform_action, unit_to_env_action

    cartpole = make_task_family("CartPole-v1", max_episode_steps=10)  # episodes restart inside the row
    tasks = cartpole.sample(1, seed=0, split="test")
    planner = make_planner(cartpole, tasks, true_dynamics(cartpole, tasks))
    with cartpole.make_env(tasks[0]) as env:
        rollouts = run_episodes([env], planner, [3], steps=60, explore_steps=2, explore_seed=7)
    starts = rollouts.episode_start[0].tolist()
    assert sum(starts) >= 5
    generator, since_start = torch.Generator().manual_seed(7), 0
    for t, start in enumerate(starts):
        since_start = 0 if start else since_start + 1
        if since_start < 2:  # a random action, drawn from the explore generator in step order
            expected = unit_to_env_action(uniform_action(cartpole.action_space, 1, generator), cartpole.action_space)
            assert rollouts.action[0, t].argmax().item() == expected[0]
