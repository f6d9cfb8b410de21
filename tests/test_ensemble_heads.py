"""Ensembles and Gaussian heads (`core.ensemble`, `core.heads`): one member is the single model, each member computes
what it computes alone and gets the gradient it would get alone, the Gaussian likelihood and its bounds, and the
planner's samples (PETS' TS-inf) from each row's member."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core.ensemble import Ensemble
from core.gru import GRUModel
from core.heads import MAX_LOG_VARIANCE, MIN_LOG_VARIANCE, OutputHead
from core.ssm import SSM
from env_runner.segments import Normalizer
from meta_rl.meta_maml import MetaMAML
from planning.dynamics import LearnedDynamics


def members(count: int, make=lambda: SSM(4, 3, 2, 8)) -> list:
    torch.manual_seed(0)
    return [make() for _ in range(count)]


def sequences(batch: int = 5, steps: int = 7):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, steps, 3, generator=generator)
    reset = torch.zeros(batch, steps)
    reset[:, 3] = 1
    return x, reset


def test_an_ensemble_of_one_member_is_the_single_model():
    (model,) = members(1)
    ensemble = Ensemble([model])
    x, reset = sequences()
    for inputs, resets in ((x, reset), (x[:, 0], reset[:, 0])):
        hidden = model.init_hidden(5)
        for got, expected in zip(ensemble(inputs, hidden, resets), model(inputs, hidden, resets), strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
    head = OutputHead(2)
    assert head.plain and head.width == 2
    prediction, target = torch.randn(4, 2), torch.randn(4, 2)
    assert head.loss(prediction, target) == F.mse_loss(prediction, target)
    assert head.point(prediction) is prediction and head.sample(prediction) is prediction


@pytest.mark.parametrize("make", [lambda: SSM(4, 3, 2, 8), lambda: GRUModel(4, 3, 2)], ids=["ssm", "gru"])
def test_each_member_computes_in_its_block_what_it_computes_alone(make):
    parts = members(3, make)
    ensemble = Ensemble(parts)
    x, reset = sequences()
    y, hidden = ensemble(x, ensemble.init_hidden(5), reset)
    assert y.shape == (5, 7, 6) and hidden.shape == (5, 12)
    for m, member in enumerate(parts):
        alone, last = member(x, member.init_hidden(5), reset)
        torch.testing.assert_close(y[..., 2 * m : 2 * m + 2], alone)
        torch.testing.assert_close(hidden[:, 4 * m : 4 * m + 4], last)


def test_each_members_meta_gradient_is_the_one_it_gets_alone():
    parts = members(2)
    ensemble, head = Ensemble(parts), OutputHead(2, members=2)
    generator = torch.Generator().manual_seed(2)
    tasks = [tuple(torch.randn(2, 6, d, generator=generator) for d in (3, 2, 3, 2)) for _ in range(3)]
    learner = MetaMAML(ensemble, inner_lr=0.1, loss_fn=head.loss)
    loss = learner.meta_loss(tasks)
    grads = dict(zip(learner.params(), torch.autograd.grad(loss, list(learner.params().values())), strict=True))
    for m, member in enumerate(parts):
        alone = MetaMAML(member, inner_lr=0.1)
        own = torch.autograd.grad(alone.meta_loss(tasks), list(alone.params().values()))
        for (name, _), expected in zip(member.named_parameters(), own, strict=True):
            torch.testing.assert_close(grads[f"members.{m}.{name}"], expected, rtol=1e-4, atol=1e-6)


def test_the_gaussian_loss_is_the_negative_log_likelihood_with_bounded_log_variance():
    head = OutputHead(3, members=2, gaussian=True)
    assert head.width == 12
    generator = torch.Generator().manual_seed(3)
    prediction, target = torch.randn(8, 12, generator=generator), torch.randn(8, 3, generator=generator)
    mean, log_variance = head.split(prediction)
    expected = sum(
        F.gaussian_nll_loss(mean[:, m], target, log_variance[:, m].exp(), eps=0.0) for m in range(2)
    )  # 0.5 (log var + error^2 / var), averaged: one member's likelihood, summed over members
    torch.testing.assert_close(head.loss(prediction, target), expected)
    raw = torch.tensor([-1e4, -4.0, 1e4])  # each member's raw log-variances, its means 0
    _, bounded = head.split(torch.cat([torch.zeros(3), raw, torch.zeros(3), raw])[None])
    for member in range(2):  # softly bounded: at the bounds for extreme values, about unchanged well inside them
        assert bounded[0, member].tolist() == pytest.approx([MIN_LOG_VARIANCE, -4.0, MAX_LOG_VARIANCE], abs=0.02)


def test_samples_come_from_each_rows_member_with_its_predicted_spread():
    head = OutputHead(1, members=2, gaussian=True)
    rows = 40000
    prediction = torch.tensor([[1.0, -2.0, 5.0, -1.0]]).repeat(rows, 1)  # member 0: N(1, e^-2), member 1: N(5, e^-1)
    _, log_variance = head.split(prediction[:1])
    drawn = head.sample(prediction, torch.Generator().manual_seed(4))[:, 0]
    for member, mean in ((0, 1.0), (1, 5.0)):
        values = drawn[member::2]
        assert values.mean().item() == pytest.approx(mean, abs=0.01)
        assert values.var().item() == pytest.approx(log_variance[0, member, 0].exp().item(), rel=0.03)
    plain_members = OutputHead(1, members=3)
    outputs = torch.arange(12.0).reshape(4, 3)  # row r, member m: 3 r + m
    assert plain_members.sample(outputs)[:, 0].tolist() == [0.0, 4.0, 8.0, 9.0]  # row r keeps member r mod 3
    assert plain_members.point(outputs)[:, 0].tolist() == [1.0, 4.0, 7.0, 10.0]


def test_the_planners_candidate_rows_each_roll_out_one_member():
    parts = members(2, lambda: SSM(4, 3, 2, 8))
    normalizer = Normalizer(obs_dim=2, action_dim=1)
    ensemble, head = Ensemble(parts), OutputHead(2, members=2)
    dynamics = LearnedDynamics(ensemble, normalizer, num_episodes=1, head=head)
    obs, action = torch.randn(4, 2), torch.randn(3, 4, 1)
    hidden = dynamics.init_hidden(4)
    rolled = obs
    for t in range(3):
        rolled, hidden = dynamics.step(rolled, action[t], hidden)
    for row in range(4):
        member = LearnedDynamics(parts[row % 2], normalizer)
        alone, state = obs[row : row + 1], member.init_hidden(1)
        for t in range(3):
            alone, state = member.step(alone, action[t, row : row + 1], state)
        torch.testing.assert_close(rolled[row : row + 1], alone)
