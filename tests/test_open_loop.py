"""The open-loop error over the planner's horizon (`pipeline.prediction.open_loop_errors`) against the planner's own
raw-unit rollout of the same model (`LearnedDynamics`), unadapted and after one step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from adaptation.test_time_adaptation import AdaptationConfig, Adapter
from core.ssm import SSM
from env_runner.environment import make_task_family
from env_runner.rollouts import collect
from env_runner.segments import Normalizer, SegmentBatch
from pipeline.prediction import open_loop_errors
from planning.dynamics import LearnedDynamics

SUPPORT, QUERY, HORIZON = 6, 8, 5


@pytest.fixture(scope="module")
def halfcheetah_windows(tmp_path_factory):
    """Random-policy data on two HalfCheetah tasks (x position dropped from the inputs: the rollout must still move
    it), its normaliser and one support/query window per task, in raw and in normalised units, in float64 (in float32
    the two computations' rounding differs by about 1e-4 of the error after 5 steps)."""
    family = make_task_family("HalfCheetah-v5")
    tasks = family.sample(2, seed=0)
    data = collect(family, tasks, steps=SUPPORT + QUERY, seed=0)
    data = replace(data, **{name: getattr(data, name).double() for name in ("obs", "action", "next_obs", "reward")})
    normalizer = Normalizer.fit(data, dropped_obs=family.translation_invariant_obs)
    for name in ("input_mean", "input_std", "target_mean", "target_std"):
        setattr(normalizer, name, getattr(normalizer, name).double())
    support, query = slice(0, SUPPORT), slice(SUPPORT, SUPPORT + QUERY)
    x, y = normalizer.inputs(data.obs, data.action), normalizer.targets(data.obs, data.next_obs)
    batch = SegmentBatch(
        support_x=x[:, None, support],
        support_y=y[:, None, support],
        query_x=x[:, None, query],
        query_y=y[:, None, query],
        support_reset=torch.zeros(2, 1, SUPPORT, dtype=torch.float64),
        query_reset=torch.zeros(2, 1, QUERY, dtype=torch.float64),
    )
    return data, normalizer, batch


def planner_rollout_error(model, normalizer, data, task: int) -> float:
    """What the planner sees: the state observed over the support's real transitions, then H model steps in raw
    units from the query's first observation with its real actions; the squared error of each predicted observation
    in units of the per-step change's std, averaged over entries and steps."""
    dynamics = LearnedDynamics(model, normalizer)
    obs, action = data.obs[task], data.action[task]
    hidden = dynamics.init_hidden(1)
    for t in range(SUPPORT):
        hidden = dynamics.observe(obs[t][None], action[t][None], hidden)
    predicted, squared = obs[SUPPORT][None], []
    for t in range(SUPPORT, SUPPORT + HORIZON):
        predicted, hidden = dynamics.step(predicted, action[t][None], hidden)
        error = (predicted[0] - data.next_obs[task, t]) / normalizer.target_std
        squared.append(error.square().mean())
    return float(torch.stack(squared).mean())


def test_open_loop_error_equals_the_planners_rollout_of_the_same_weights(halfcheetah_windows):
    data, normalizer, batch = halfcheetah_windows
    torch.manual_seed(0)
    model = SSM(state_dim=8, input_dim=normalizer.input_dim, output_dim=normalizer.target_dim, hidden_dim=16).double()
    adapter = Adapter(model, AdaptationConfig(learning_rate=0.05, num_steps=1, mode="accumulate"))
    expected = [planner_rollout_error(model, normalizer, data, task) for task in range(2)]
    errors = open_loop_errors(adapter, batch, (0, 1), normalizer, HORIZON)  # leaves the model adapted
    assert errors["0"] == pytest.approx(expected, rel=1e-10)
    adapted = []
    for task in range(2):  # one step on each task's support, then the same rollout with the adapted weights
        adapter.reset()
        adapter.update_step(batch.support_x[task], batch.support_y[task], reset=batch.support_reset[task])
        adapted.append(planner_rollout_error(adapter.model, normalizer, data, task))
    assert errors["1"] == pytest.approx(adapted, rel=1e-10)
    assert errors["1"] != pytest.approx(errors["0"], rel=1e-6)


def test_a_query_that_restarts_an_episode_is_left_out(halfcheetah_windows):
    _, normalizer, batch = halfcheetah_windows
    restarted = SegmentBatch(**{**batch.__dict__, "query_reset": batch.query_reset.clone()})
    restarted.query_reset[0, 0, 2] = 1
    model = SSM(state_dim=8, input_dim=normalizer.input_dim, output_dim=normalizer.target_dim, hidden_dim=16).double()
    adapter = Adapter(model, AdaptationConfig(learning_rate=0.05, num_steps=1, mode="accumulate"))
    full, left = (open_loop_errors(adapter, b, (0,), normalizer, HORIZON)["0"] for b in (batch, restarted))
    assert len(full) == 2 and left == full[1:]
