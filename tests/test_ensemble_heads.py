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
    assert head.point(prediction) is prediction and head.draw(prediction) is prediction


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


def test_a_gaussian_draw_has_the_members_mean_and_its_bounded_variance():
    head = OutputHead(1, members=2, gaussian=True)
    member_outputs = torch.tensor([[5.0, -1.0]]).repeat(40000, 1)  # one member's mean 5, raw log-variance -1
    drawn = head.draw(member_outputs, torch.Generator().manual_seed(4))[:, 0]
    _, log_variance = head.split(torch.tensor([[1.0, -2.0, 5.0, -1.0]]))  # the same member as block 1
    assert drawn.mean().item() == pytest.approx(5.0, abs=0.01)
    assert drawn.var().item() == pytest.approx(log_variance[0, 1, 0].exp().item(), rel=0.03)
    with pytest.raises(ValueError, match="one member's 2 outputs, got 4"):
        head.draw(torch.zeros(3, 4))
    plain_members = OutputHead(1, members=3)
    outputs = torch.arange(12.0).reshape(4, 3)  # row r, member m: 3 r + m
    assert plain_members.point(outputs)[:, 0].tolist() == [1.0, 4.0, 7.0, 10.0]


def test_own_rows_runs_each_row_on_its_own_member_alone_and_moves_only_that_members_state():
    parts = members(3)
    ensemble = Ensemble(parts)
    generator = torch.Generator().manual_seed(2)
    x, hidden = torch.randn(10, 3, generator=generator), torch.randn(10, 3 * 4, generator=generator)
    y, next_hidden = ensemble(x, hidden, own_rows=5)  # two episodes of 5 candidates: members 0 1 2 0 1 each
    assert y.shape == (10, 2) and next_hidden.shape == (10, 12)
    for row in range(10):
        member = row % 5 % 3
        alone, state = parts[member](x[row : row + 1], hidden[row : row + 1, 4 * member : 4 * member + 4])
        torch.testing.assert_close(y[row : row + 1], alone)
        expected = hidden[row].clone()
        expected[4 * member : 4 * member + 4] = state[0]
        torch.testing.assert_close(next_hidden[row], expected)
    with pytest.raises(ValueError, match="own_rows runs step mode"):
        ensemble(x.unsqueeze(1), hidden, own_rows=5)


@pytest.mark.parametrize("stacked", [False, True], ids=["shared weights", "weights per episode"])
def test_the_planners_candidate_rows_each_roll_out_one_member(stacked):
    parts = members(2, lambda: SSM(4, 3, 2, 8))
    normalizer = Normalizer(obs_dim=2, action_dim=1)
    ensemble, head = Ensemble(parts), OutputHead(2, members=2)
    dynamics = LearnedDynamics(ensemble, normalizer, num_episodes=2, head=head)
    if stacked:  # each episode its own copy of the weights, as after adaptation
        dynamics.set_params({n: p.detach().expand(2, *p.shape) for n, p in ensemble.named_parameters()}, stacked=True)
    obs, action = torch.randn(6, 2), torch.randn(3, 6, 1)  # two episodes of 3 candidates: members 0 1 0 each
    start = dynamics.observe(torch.randn(6, 2), torch.randn(6, 1), dynamics.init_hidden(6))
    full = ensemble(dynamics._inputs(obs, action[0], start), start)[1]
    hidden, rolled = start, obs
    for t in range(3):
        rolled, hidden = dynamics.step(rolled, action[t], hidden)
    for row in range(6):
        member = LearnedDynamics(parts[row % 3 % 2], normalizer)
        alone, state = obs[row : row + 1], start[row : row + 1, 4 * (row % 3 % 2) : 4 * (row % 3 % 2) + 4]
        for t in range(3):
            alone, state = member.step(alone, action[t, row : row + 1], state)
        torch.testing.assert_close(rolled[row : row + 1], alone)
    assert not torch.equal(start[:, :4], start[:, 4:])  # observe moved both members' states ...
    torch.testing.assert_close(dynamics.observe(obs, action[0], start), full)  # ... as the full ensemble does
    with pytest.raises(ValueError, match="a head of 2 members needs an Ensemble of as many"):
        LearnedDynamics(parts[0], normalizer, head=head)
