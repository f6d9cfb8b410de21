"""RL²: the actor-critic's two modes, collection over trials, GAE, the config, resuming, and a bandit it learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from env_runner.environment import make_task_family
from env_runner.tasks import TaskFamily
from meta_rl import rl2
from meta_rl.ppo import gae
from meta_rl.rl2 import (
    RL2Config,
    build_policy,
    collect_trials,
    evaluate_rl2,
    train_rl2,
)
from meta_rl.rl2_policy import MEMORIES, RecurrentActorCritic, policy_inputs

PULLS = 3
BANDIT_ID = "DelayedTwoArmedBandit-v0"


class DelayedTwoArmedBandit(gym.Env):
    """Two arms, `PULLS` pulls per episode; only the last pull pays: 1 on the task's good arm, else 0.

    The observation is the fraction of the episode elapsed, the same for every task, so only the reward
    of an earlier episode tells the arms apart: any policy expects 0.5 in a trial's first episode.
    """

    def __init__(self) -> None:
        self.good_arm = 0.0  # the task parameter: arm 1 pays when it is above 0.5
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._pull = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._pull = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        self._pull += 1
        last = self._pull == PULLS
        reward = float(last and int(action) == int(self.good_arm > 0.5))
        return np.array([self._pull / PULLS], dtype=np.float32), reward, last, False, {}


class BanditFamily(TaskFamily):
    param_names = ("good_arm",)
    coefficient_ranges = {"good_arm": (0.0, 1.0)}

    def __init__(self) -> None:
        if BANDIT_ID not in gym.registry:
            gym.register(id=BANDIT_ID, entry_point=DelayedTwoArmedBandit, max_episode_steps=PULLS)
        super().__init__(BANDIT_ID)

    def _params_from_coefficients(self, coefficients, rng):
        return dict(coefficients)

    def _coefficients(self, params):
        return dict(params)


@pytest.fixture(scope="module")
def navigation():
    return make_task_family("PointNavigation-v0", max_episode_steps=10)


def step_loop(policy: RecurrentActorCritic, inputs: torch.Tensor, reset: torch.Tensor):
    """Step mode over (B, T, I) inputs -> the per-step distributions' parameters and values."""
    state, outputs = policy.initial_state(inputs.shape[0]), []
    for t in range(inputs.shape[1]):
        distribution, value, state = policy(inputs[:, t], state, reset[:, t])
        outputs.append((distribution, value))
    return outputs


@pytest.mark.parametrize("memory", MEMORIES)
@pytest.mark.parametrize("discrete", [False, True])
def test_step_mode_equals_sequence_mode_across_trial_and_episode_boundaries(memory, discrete):
    torch.manual_seed(0)
    space = spaces.Discrete(3) if discrete else spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
    policy = RecurrentActorCritic(obs_dim=4, action_space=space, memory=memory, hidden_dim=16)
    batch, steps = 3, 40
    episode_start = torch.zeros(batch, steps, dtype=torch.bool)
    episode_start[:, [0, 9, 23, 31]] = True
    episode_start[1, 14] = True  # rows need not share their episode ends
    reset = torch.zeros(batch, steps, dtype=torch.bool)
    reset[:, [0, 23]] = True  # a second trial starts at t = 23 in every row ...
    reset[2, 31] = True  # ... and a third at t = 31 in row 2 alone
    actions = torch.randint(3, (batch, steps)) if discrete else torch.randn(batch, steps, 2)
    prev_actions = torch.nn.functional.one_hot(actions, 3).float() if discrete else actions.clamp(-1, 1)
    inputs = policy_inputs(torch.randn(batch, steps, 4), prev_actions, torch.randn(batch, steps), episode_start)

    with torch.no_grad():
        distribution, values, _ = policy(inputs, None, reset)
        stepped = step_loop(policy, inputs, reset)
    step_log_probs = torch.stack([d.log_prob(actions[:, t]) for t, (d, _) in enumerate(stepped)], 1)
    step_values = torch.stack([v for _, v in stepped], 1)
    torch.testing.assert_close(distribution.log_prob(actions), step_log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(values, step_values, rtol=0, atol=1e-5)
    # The reset matters: without it the second trial's values differ.
    with torch.no_grad():
        _, values_without_reset, _ = policy(inputs)
    assert (values_without_reset[:, 23:] - values[:, 23:]).abs().max() > 1e-3


@pytest.mark.parametrize("memory", ["ssm", "gru"])
def test_sequence_mode_recomputes_the_log_probs_recorded_at_collection(navigation, memory):
    torch.manual_seed(1)
    policy = build_policy(navigation, memory, RL2Config(episodes_per_trial=3, hidden_dim=16))
    tasks = navigation.sample(4, seed=0)
    first = collect_trials(navigation, tasks, 3, seed=0, policy=policy)
    second = collect_trials(navigation, tasks[::-1], 3, seed=1, policy=policy)
    assert first.inputs.shape[:2] == (4, 30) and int(first.truncated.sum()) == 4 * 3
    # Two trials per row, back to back: the memory resets where the second begins.
    inputs = torch.cat([first.inputs, second.inputs], 1)
    reset = torch.zeros(4, 60, dtype=torch.bool)
    reset[:, [0, 30]] = True
    with torch.no_grad():
        distribution, values, _ = policy(inputs, None, reset)
    recorded_log_probs = torch.cat([first.log_probs, second.log_probs], 1)
    torch.testing.assert_close(
        distribution.log_prob(torch.cat([first.actions, second.actions], 1)), recorded_log_probs, rtol=0, atol=1e-5
    )
    torch.testing.assert_close(values, torch.cat([first.values, second.values], 1), rtol=0, atol=1e-5)


def test_memory_and_previous_action_carry_across_episode_ends_but_not_into_a_new_trial(navigation):
    policy = build_policy(navigation, "ssm", RL2Config(hidden_dim=16))
    trials = collect_trials(navigation, navigation.sample(2, seed=0), 2, seed=0, policy=policy)
    obs, prev_action = trials.inputs[..., :2], trials.inputs[..., 2:4]
    prev_reward, episode_start = trials.inputs[..., 4], trials.inputs[..., 5]
    assert episode_start[:, [0, 10]].eq(1).all() and episode_start.sum() == 2 * 2
    torch.testing.assert_close(obs[:, 10], torch.zeros(2, 2))  # the reset observation, not the final one
    torch.testing.assert_close(prev_action[:, 10], trials.actions[:, 9].clamp(-1, 1))
    torch.testing.assert_close(prev_reward[:, 10], trials.rewards[:, 9])
    torch.testing.assert_close(prev_action[:, 0], torch.zeros(2, 2))
    assert trials.episode_index[:, :10].eq(0).all() and trials.episode_index[:, 10:].eq(1).all()


def test_a_truncated_step_bootstraps_from_the_final_observation_under_the_memory_of_that_moment(navigation):
    torch.manual_seed(2)
    policy = build_policy(navigation, "gru", RL2Config(hidden_dim=16))
    trials = collect_trials(navigation, navigation.sample(3, seed=0), 2, seed=0, policy=policy, reward_scale=0.5)
    assert trials.truncated[:, [9, 19]].all() and not trials.terminated.any()
    assert trials.bootstrap_values[:, [9, 19]].ne(0).all() and trials.bootstrap_values.ne(0).sum() == 3 * 2
    unit_action = trials.actions[:, 9].clamp(-1, 1)
    final_obs = trials.inputs[:, 9, :2] + 0.1 * unit_action  # the point's position after its 10th step
    final_input = policy_inputs(final_obs, unit_action, 0.5 * trials.rewards[:, 9], torch.zeros(3, dtype=torch.bool))
    with torch.no_grad():
        _, values, _ = policy(torch.cat([trials.inputs[:, :10], final_input.unsqueeze(1)], 1))
    torch.testing.assert_close(trials.bootstrap_values[:, 9], values[:, -1], rtol=0, atol=1e-5)


def test_gae_matches_a_hand_computed_case_with_a_termination_and_a_truncation():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    values = torch.tensor([[0.5, 1.0, 1.5, 2.0, 2.5]])
    bootstrap = torch.tensor([[0.0, 0.0, 0.0, 0.0, 7.0]])  # V(final observation) of the truncated last step
    terminated = torch.tensor([[False, True, False, False, False]])
    truncated = torch.tensor([[False, False, False, False, True]])
    advantages, returns = gae(rewards, values, bootstrap, terminated, truncated, gamma, lam)

    d4 = 5.0 + gamma * 7.0 - 2.5  # truncation: bootstrap from the final observation
    d3 = 4.0 + gamma * 2.5 - 2.0
    d2 = 3.0 + gamma * 2.0 - 1.5
    d1 = 2.0 - 1.0  # termination: no bootstrap, and the chain stops here
    d0 = 1.0 + gamma * 1.0 - 0.5
    a4, a3 = d4, d3 + gamma * lam * d4
    a2 = d2 + gamma * lam * a3
    a1 = d1
    a0 = d0 + gamma * lam * a1
    expected = torch.tensor([[a0, a1, a2, a3, a4]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("episodes_per_trial", 0),
        ("trials_per_iteration", 2.5),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("learning_rate", 0.0),
        ("ent_coef", -1.0),
        ("num_minibatches", 3),  # does not divide 16 trials
    ],
)
def test_a_bad_config_raises_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be .*, got "):
        RL2Config(**{field: value})


def test_an_unknown_memory_raises_value_error():
    with pytest.raises(ValueError, match="memory"):
        RecurrentActorCritic(2, spaces.Discrete(2), memory="lstm")


def test_a_run_killed_mid_training_resumes_to_the_same_weights(navigation, tmp_path, monkeypatch):
    config = RL2Config(iterations=2, trials_per_iteration=4, num_minibatches=2, hidden_dim=8, update_epochs=2)
    tasks = navigation.sample(6, seed=0)
    straight, straight_curve = train_rl2(navigation, tasks, config, seed=3, memory="ssm", progress=False)

    checkpoint = tmp_path / "rl2.pt"
    ppo_update, updates = rl2.ppo_update, []

    def update_then_die(*args, **kwargs):
        updates.append(1)
        if len(updates) == 2:
            raise KeyboardInterrupt  # killed during the second iteration, after the first checkpoint
        return ppo_update(*args, **kwargs)

    monkeypatch.setattr(rl2, "ppo_update", update_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_rl2(navigation, tasks, config, 3, "ssm", progress=False, checkpoint_path=checkpoint)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="another run"):
        train_rl2(navigation, tasks, config, 4, "ssm", progress=False, checkpoint_path=checkpoint)
    resumed, resumed_curve = train_rl2(navigation, tasks, config, 3, "ssm", progress=False, checkpoint_path=checkpoint)
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0)
    assert resumed_curve == straight_curve


def test_the_oracle_reads_the_task_parameters_in_sorted_order(navigation):
    tasks = navigation.sample(2, seed=0)
    oracle = build_policy(navigation, "ssm", RL2Config(hidden_dim=8), oracle=True)
    trials = collect_trials(navigation, tasks, 1, seed=0, policy=oracle, oracle=True)
    goals = torch.tensor([[task.params["goal_x"], task.params["goal_y"]] for task in tasks])
    torch.testing.assert_close(trials.inputs[:, :, 2:4], goals.unsqueeze(1).expand(2, 10, 2))
    returns = evaluate_rl2(oracle, navigation, tasks, RL2Config(episodes_per_trial=1), seed=0)
    assert len(returns) == 2 and all(len(row) == 1 for row in returns)


def test_random_baseline_gives_tasks_by_episodes_returns_reproducibly(navigation):
    config = RL2Config(episodes_per_trial=3)
    tasks = navigation.sample(4, seed=0)
    returns = evaluate_rl2(None, navigation, tasks, config, seed=0)
    assert np.array(returns).shape == (4, 3) and np.all(np.array(returns) < 0)
    assert returns == evaluate_rl2(None, navigation, tasks, config, seed=0)
    assert returns != evaluate_rl2(None, navigation, tasks, config, seed=1)


@pytest.mark.parametrize("memory", ["ssm", "gru"])
def test_rl2_learns_a_bandit_whose_second_episode_needs_the_first_episodes_reward(memory):
    torch.set_num_threads(1)
    family = BanditFamily()
    config = RL2Config(
        episodes_per_trial=2,
        trials_per_iteration=64,
        iterations=60,
        hidden_dim=32,
        learning_rate=3e-3,
        gamma=1.0,
        gae_lambda=1.0,
        ent_coef=0.01,  # the bandit's rewards are 0 or 1: no scaling, and a little exploration
        reward_scale=1.0,
    )
    policy, curve = train_rl2(family, family.sample(200, seed=0), config, seed=0, memory=memory, progress=False)
    returns = np.array(evaluate_rl2(policy, family, family.sample(200, seed=0, split="test"), config, seed=1))
    first, second = returns.mean(0)
    assert abs(first - 0.5) < 0.12  # no policy can know the good arm before its first reward
    assert second > 0.85, (first, second, curve[-1])  # chance is 0.5: the memory carried episode 1's outcome


def test_rl2_evaluation_starts_each_trial_from_the_model_based_evaluations_first_reset():
    from core.seeding import derive_seed
    from pipeline.config import PipelineConfig
    from pipeline.data import evaluation_reset_seed
    from pipeline.rl2_run import _evaluate

    pendulum = make_task_family("Pendulum-v1")
    tasks = pendulum.sample(3, seed=0, split="test")
    resets = [evaluation_reset_seed(4, "test", index, 0) for index in range(3)]
    trials = collect_trials(pendulum, tasks, 1, seed=0, reset_seeds=resets)
    first_obs = [pendulum.make_env(task).reset(seed=seed)[0] for task, seed in zip(tasks, resets, strict=True)]
    torch.testing.assert_close(trials.inputs[:, 0, :3], torch.as_tensor(np.stack(first_obs)))
    with pytest.raises(ValueError, match="2 reset seeds for 3 tasks"):
        collect_trials(pendulum, tasks, 1, seed=0, reset_seeds=resets[:2])

    config = PipelineConfig(env_name="Pendulum-v1", seed=4, algo="rl2")
    evaluated = _evaluate(pendulum, tasks, {}, config, "in_distribution")["random"]["episode_returns"]
    action_seed = derive_seed(4, "rl2-evaluate-in_distribution")
    expected = evaluate_rl2(None, pendulum, tasks, config.rl2, action_seed, resets)
    assert [evaluated[e]["per_task"] for e in range(2)] == [[row[e] for row in expected] for e in range(2)]


def test_the_val_curve_leaves_training_unchanged_and_scores_the_policy_of_its_iteration(navigation):
    config = RL2Config(
        iterations=3, trials_per_iteration=4, num_minibatches=2, hidden_dim=8, update_epochs=1, val_every=2
    )
    tasks, val_tasks = navigation.sample(6, seed=0), navigation.sample(3, seed=0, split="val")
    plain, plain_curve = train_rl2(navigation, tasks, config, seed=3, progress=False)
    policy, curve = train_rl2(navigation, tasks, config, seed=3, progress=False, val_tasks=val_tasks)
    assert [("val_returns" in entry) for entry in curve] == [False, True, True]  # every 2nd iteration and the last
    assert [{k: v for k, v in entry.items() if k != "val_returns"} for entry in curve] == plain_curve
    best = rl2.best_val_iteration(curve)  # the policy returned is that iterate: it scores what was measured then
    again = rl2.evaluate_rl2(policy, navigation, val_tasks, config, rl2.derive_seed(3, "rl2-val", best - 1))
    assert curve[best - 1]["val_returns"] == pytest.approx(np.mean(again, axis=0).tolist())
    same_as_last = all(torch.equal(policy.state_dict()[name], t) for name, t in plain.state_dict().items())
    assert same_as_last == (best == 3)


def row(iteration: int, *val: float) -> dict:
    return {"iteration": iteration, **({"val_returns": list(val)} if val else {})}


def test_the_best_val_iterate_is_the_highest_trial_return_and_the_earliest_of_ties():
    curve = [row(1), row(2, -5.0, -4.0), row(3), row(4, -2.0, -3.0), row(5, -3.0, -2.0), row(6, -6.0, -7.0)]
    assert rl2.best_val_iteration(curve) == 4  # -5 beats -9 and -13; 4 and 5 tie, the earlier is kept
    assert rl2.best_val_iteration([row(1), row(2)]) is None


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([-100.0, -20.0, -70.0, -80.0], True),  # gained 80, lost more than half of it and stayed down
        ([-100.0, -20.0, -70.0, -50.0], False),  # recovered above best - 40 at the last point
        ([-100.0, -20.0, -50.0, -55.0], False),  # slid, but by less than half the gain
        ([-100.0, -20.0, -70.0], False),  # one point down is no "stayed there"
        ([-20.0, -70.0, -80.0, -90.0], False),  # never gained over the first measurement: nothing to lose
    ],
)
def test_a_collapse_falls_by_more_than_half_the_gain_and_stays_down(scores, expected):
    curve = [row(index + 1, score) for index, score in enumerate(scores)]
    assert rl2.collapsed(curve) is expected


def test_a_checkpoint_from_before_the_best_iterate_was_kept_is_refused(navigation, tmp_path):
    config = RL2Config(iterations=1, trials_per_iteration=4, num_minibatches=2, hidden_dim=8, update_epochs=1)
    checkpoint = tmp_path / "rl2.pt"
    train_rl2(navigation, navigation.sample(4, seed=0), config, 3, "ssm", progress=False, checkpoint_path=checkpoint)
    state = torch.load(checkpoint, weights_only=False)
    del state["best_policy"]
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match="predates keeping the best val iterate"):
        train_rl2(
            navigation, navigation.sample(4, seed=0), config, 3, "ssm", progress=False, checkpoint_path=checkpoint
        )


def test_a_minibatch_with_a_non_finite_loss_is_skipped_and_leaves_the_weights_finite(navigation):
    config = RL2Config(trials_per_iteration=4, num_minibatches=2, update_epochs=2, hidden_dim=8)
    policy = build_policy(navigation, "ssm", config)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    trials = collect_trials(navigation, navigation.sample(4, seed=0), 2, seed=0, policy=policy)
    returns = torch.zeros_like(trials.rewards)
    before = {name: value.clone() for name, value in policy.state_dict().items()}
    poisoned = torch.full_like(trials.rewards, float("nan"))  # every minibatch's loss is NaN
    stats = rl2.ppo_update(policy, optimizer, trials, poisoned, returns, config, torch.Generator().manual_seed(0))
    assert stats["skipped_minibatches"] == 4
    for name, value in policy.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    stats = rl2.ppo_update(policy, optimizer, trials, torch.ones_like(returns), returns, config, torch.Generator())
    assert stats["skipped_minibatches"] == 0
    assert any(not torch.equal(value, before[name]) for name, value in policy.state_dict().items())
