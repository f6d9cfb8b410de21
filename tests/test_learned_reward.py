"""World models that learn the reward: the reward target, its training, the planner scoring with the (adapted)
predicted reward, online adaptation of the reward head, and the pipeline's --reward setting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from adaptation.online import OnlineAdaptationConfig
from core.parameters import mse_loss
from core.ssm import SSM
from env_runner.environment import make_task_family
from env_runner.navigation import POINT_NAVIGATION_ID
from env_runner.rollouts import collect
from env_runner.segments import Normalizer, sample_task_batches
from meta_rl.meta_maml import MetaMAML
from pipeline.acting import act, online_adaptation_hook
from pipeline.config import PipelineConfig, defaults_for
from pipeline.world import family_and_config, load_world
from planning.dynamics import LearnedDynamics
from planning.planner import CEMPlanner, PlannerConfig

torch.set_num_threads(1)

SMALL = PlannerConfig(horizon=3, num_candidates=64, num_iterations=2)


@pytest.fixture(scope="module")
def navigation():
    return make_task_family(POINT_NAVIGATION_ID)


@pytest.fixture(scope="module")
def navigation_data(navigation):
    tasks = navigation.sample(8, seed=0)
    return tasks, collect(navigation, tasks, steps=200, seed=0)


class LinearWorldModel(nn.Module):
    """y = W x + b with the stateful interface (a state that never changes): a world model whose predictions a test
    writes down. PointNavigation: x = (position, action), y = (position delta, reward)."""

    def __init__(self, reward_weights: tuple[float, float, float, float]) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 3)
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.bias.zero_()
            self.proj.weight[0, 2] = self.proj.weight[1, 3] = 1.0  # the position moves by the action
            self.proj.weight[2] = torch.tensor(reward_weights)

    def init_hidden(self, n: int) -> torch.Tensor:
        return torch.zeros(n, 1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, reset: torch.Tensor | None = None):
        return self.proj(x), hidden


LEFTWARD = (-1.0, 0.0, -1.0, 0.0)  # the predicted reward is -x' = -(x + a_x): it pays to move left


def identity_normalizer() -> Normalizer:
    return Normalizer(obs_dim=2, action_dim=2, predicts_reward=True)


# --- the reward target ----------------------------------------------------------------------------


def test_the_reward_column_is_standardised_with_variance_reward_weight_and_round_trips(navigation_data):
    _, data = navigation_data
    normalizer = Normalizer.fit(data, reward_weight=4.0)
    targets = normalizer.targets(data.obs, data.next_obs, data.reward)  # (N, T, 3)
    assert normalizer.target_dim == 3 and targets.shape == (*data.reward.shape, 3)
    assert targets[..., 2].flatten().std().item() == pytest.approx(2.0, rel=1e-3)  # sqrt(4): the loss weighs it 4x
    assert targets[..., :2].flatten(0, 1).std(0).tolist() == pytest.approx([1.0, 1.0], rel=1e-3)
    restored = normalizer.denormalize_targets(targets)
    torch.testing.assert_close(restored[..., :2], data.next_obs - data.obs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(restored[..., 2], data.reward, rtol=1e-4, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"the targets include the reward: expected rewards of shape \(8, 200\), got None"
    ):
        normalizer.targets(data.obs, data.next_obs)
    with pytest.raises(ValueError, match="reward_weight must be > 0"):
        Normalizer.fit(data, reward_weight=0.0)
    plain = Normalizer.fit(data)
    assert plain.target_dim == 2 and plain.targets(data.obs, data.next_obs, data.reward).shape[-1] == 2


def test_meta_training_lowers_the_adapted_reward_error_on_held_out_goals(navigation, navigation_data):
    """The reward depends on the hidden goal: after one inner step on a support window, the meta-trained SSM predicts
    the query rewards of goals it never saw far better than its initial weights do."""
    tasks, data = navigation_data
    normalizer = Normalizer.fit(data, reward_weight=1.0)
    held_out = navigation.sample(4, seed=0, split="test")
    test_batch = sample_task_batches(
        collect(navigation, held_out, steps=200, seed=1), normalizer, list(range(4)), 4, 16, 16, generator=1
    )
    torch.manual_seed(0)
    meta = MetaMAML(SSM(16, 4, 3, 32), inner_lr=0.1, outer_lr=3e-3, learn_inner_lr=True, inner_grad_clip=10.0)

    def adapted_reward_error() -> float:
        errors = []
        for sx, sy, qx, qy, s_reset, q_reset in test_batch.window_tuples():
            hidden = meta.model.init_hidden(1)
            fast = meta.inner_loop(meta.params(), sx, sy, hidden, s_reset, mse_loss, 1)
            prediction, _ = meta.functional_forward(qx, hidden, fast, q_reset)
            errors.append(torch.mean((prediction[..., 2] - qy[..., 2]) ** 2).item())
        return float(np.mean(errors))

    before = adapted_reward_error()
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        chosen = torch.randperm(len(tasks), generator=generator)[:4]
        batch = sample_task_batches(data, normalizer, chosen, 2, 16, 16, generator)
        meta.meta_update(batch.window_tuples())
    after = adapted_reward_error()
    assert after < 0.5 * before, (before, after)


# --- planning with the predicted reward -------------------------------------------------------------


def test_the_planner_picks_by_the_learned_reward_where_it_disagrees_with_the_known_one(navigation):
    task = navigation.sample(1, seed=0)[0]
    goal_right = type(task)(task.env_id, "test", 0, {"goal_x": 0.5, "goal_y": 0.0})  # the known reward: move right
    dynamics = LearnedDynamics(LinearWorldModel(LEFTWARD), identity_normalizer())
    obs, hidden = torch.zeros(1, 2), dynamics.init_hidden(1)
    learned = CEMPlanner(dynamics, None, navigation.action_space, SMALL, seed=0)
    known = CEMPlanner(dynamics, navigation.reward_fn(goal_right), navigation.action_space, SMALL, seed=0)
    assert learned.plan(obs, hidden)[0, 0] < -0.05 and known.plan(obs, hidden)[0, 0] > 0.05
    with pytest.raises(ValueError, match="does not predict the reward"):
        plain = LearnedDynamics(LinearWorldModel(LEFTWARD), Normalizer(obs_dim=2, action_dim=2))
        CEMPlanner(plain, None, navigation.action_space, SMALL)


def test_each_episode_plans_with_its_own_adapted_reward_head(navigation):
    model = LinearWorldModel(LEFTWARD)
    dynamics = LearnedDynamics(model, identity_normalizer(), num_episodes=2)
    weight = model.proj.weight.detach()
    rightward = weight.clone()
    rightward[2] = -weight[2]  # episode 1's adapted reward head pays for moving right
    dynamics.set_params({"proj.weight": torch.stack([weight, rightward])}, stacked=True)
    planner = CEMPlanner(dynamics, None, navigation.action_space, SMALL, seed=0, num_episodes=2)
    actions = planner.plan(torch.zeros(2, 2), dynamics.init_hidden(2))
    assert actions[0, 0] < -0.05 and actions[1, 0] > 0.05


def test_acting_in_the_environment_follows_the_learned_reward_not_the_tasks(navigation):
    goal_right = navigation.sample(1, seed=0)[0]
    goal_right = type(goal_right)(goal_right.env_id, "test", 0, {"goal_x": 0.5, "goal_y": 0.0})
    dynamics = LearnedDynamics(LinearWorldModel(LEFTWARD), identity_normalizer())
    config = PipelineConfig(env_name=POINT_NAVIGATION_ID, planner=SMALL)
    rollouts = act(navigation, [goal_right], [0], 5, dynamics, config, planner_seed=0)
    assert (rollouts.action[0, :, 0] < 0).all()  # the env pays for moving right; the model's reward for moving left
    assert rollouts.next_obs[0, -1, 0] < -0.2


def test_online_adaptation_fits_the_reward_head_to_the_rewards_observed(navigation):
    """The window's targets carry the observed reward: the update moves the predicted reward towards it."""
    model = LinearWorldModel(LEFTWARD)
    meta = MetaMAML(model, inner_lr=0.2)
    normalizer = identity_normalizer()
    hook = online_adaptation_hook(meta, normalizer, OnlineAdaptationConfig(window=4, update_every=4), num_envs=1)
    generator = torch.Generator().manual_seed(0)
    obs, update = torch.zeros(1, 2), None
    for step in range(4):
        action = torch.rand(1, 2, generator=generator) * 0.2 - 0.1
        next_obs = obs + action
        reward = torch.tensor([1.0])  # the model predicts about -x'
        update = hook(obs, action, next_obs, reward, torch.tensor([step == 0]), model.init_hidden(1))
        obs = next_obs
    params, _ = update
    x = normalizer.inputs(obs, torch.zeros(1, 2))
    before = model(x, model.init_hidden(1))[0][0, 2]
    after = torch.func.functional_call(
        model, {name: value[0] for name, value in params.items()}, (x, torch.zeros(1, 1))
    )
    assert abs(after[0][0, 2] - 1.0) < abs(before - 1.0) - 0.05


# --- the pipeline ----------------------------------------------------------------------------------


def test_auto_learns_the_reward_where_it_depends_on_the_task_and_known_needs_a_closed_form():
    assert family_and_config(defaults_for("Pendulum-v1"))[1].reward == "known"
    assert family_and_config(defaults_for(POINT_NAVIGATION_ID))[1].reward == "learned"
    assert family_and_config(PipelineConfig(env_name="Pendulum-v1", reward="learned"))[1].reward == "learned"
    refused = "CartPole-v0 has no closed-form reward .* pass --reward learned"
    with pytest.warns(UserWarning, match="no task family"), pytest.raises(ValueError, match=refused):
        family_and_config(PipelineConfig(env_name="CartPole-v0", reward="known"))
    with pytest.warns(UserWarning, match="no task family"):
        assert family_and_config(PipelineConfig(env_name="CartPole-v0", reward="learned"))[1].reward == "learned"


def test_quick_pendulum_with_the_learned_reward_runs_end_to_end_and_reloads(tmp_path):
    from pipeline import cli

    cli.main(["--quick", "--no_progress", "--env_name", "Pendulum-v1", "--reward", "learned", "--out_dir",
              str(tmp_path)])  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["reward"] == "learned"
    assert all(np.isfinite(value["mean"]) for value in metrics["control"].values())
    world = load_world(tmp_path)
    assert world.normalizer.predicts_reward and world.models.maml_model.output_dim == 4
