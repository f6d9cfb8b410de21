"""Adapter and OnlineAdapter: held-out improvement, meta-learned vs ERM weights, modes, safeguards, states."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaptation import AdaptationConfig, Adapter, OnlineAdapter
from core.ssm import SSM
from meta_rl.meta_maml import MetaMAML

# ----------------------------------------------------------------------------- linear-dynamics task family
# x_{t+1} = A x_t + B u_t + noise, A = r * rotation(phi) with r ~ U[0.7, 0.95], phi ~ U[-0.8, 0.8],
# B ~ U[-1, 1]^(2 x 1) per task. Model input (x_t, u_t) (3,), target x_{t+1} - x_t (2,).
INPUT_DIM, TARGET_DIM = 3, 2


@dataclass(frozen=True)
class LinearTask:
    A: torch.Tensor  # (2, 2)
    B: torch.Tensor  # (2, 1)


def sample_linear_tasks(num_tasks: int, generator: torch.Generator) -> list[LinearTask]:
    radius = torch.empty(num_tasks).uniform_(0.7, 0.95, generator=generator)
    angle = torch.empty(num_tasks).uniform_(-0.8, 0.8, generator=generator)
    control = torch.empty(num_tasks, 2, 1).uniform_(-1.0, 1.0, generator=generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    dynamics = radius.view(-1, 1, 1) * rotation
    return [LinearTask(dynamics[i], control[i]) for i in range(num_tasks)]


def rollout(task: LinearTask, batch: int, steps: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` trajectories: inputs (batch, steps, 3), targets (batch, steps, 2)."""
    state = torch.randn(batch, 2, generator=generator)
    actions = torch.randn(batch, steps, 1, generator=generator)
    inputs, targets = [], []
    for t in range(steps):
        next_state = state @ task.A.T + actions[:, t] @ task.B.T + 0.01 * torch.randn(batch, 2, generator=generator)
        inputs.append(torch.cat([state, actions[:, t]], -1))
        targets.append(next_state - state)
        state = next_state
    return torch.stack(inputs, 1), torch.stack(targets, 1)


def small_ssm(seed: int = 0) -> SSM:
    torch.manual_seed(seed)
    return SSM(state_dim=8, input_dim=INPUT_DIM, output_dim=TARGET_DIM, hidden_dim=32)


def held_out_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return F.mse_loss(model(x)[0], y).item()


def step_loop(model: SSM, x: torch.Tensor, hidden: torch.Tensor, reset: torch.Tensor | None = None) -> torch.Tensor:
    """Reference final state: step mode over a (B, T, D) sequence."""
    with torch.no_grad():
        for t in range(x.shape[1]):
            hidden = model(x[:, t], hidden, None if reset is None else reset[:, t])[1]
    return hidden


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def assert_same_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    for name, param in model.named_parameters():
        assert torch.equal(param, weights[name]), name


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models: one thread is fastest and keeps clear of other processes on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def task_data():
    generator = torch.Generator().manual_seed(1)
    task = sample_linear_tasks(1, generator)[0]
    support = rollout(task, 4, 32, generator)
    held_out = rollout(task, 8, 32, generator)
    return support, held_out


@pytest.fixture(scope="module")
def meta_trained():
    """SSMs trained on the family for 80 iterations of 8 tasks: MetaMAML (one SGD step, lr 0.1) and ERM (Adam
    on the pooled data of the same tasks, same learning rate and iterations)."""
    generator = torch.Generator().manual_seed(0)
    maml = MetaMAML(small_ssm(), inner_lr=0.1, outer_lr=3e-3)
    erm_model = small_ssm()
    erm_optimizer = torch.optim.Adam(erm_model.parameters(), lr=3e-3)
    for _ in range(80):
        tasks = []
        for task in sample_linear_tasks(8, generator):
            x, y = rollout(task, 4, 32, generator)
            tasks.append((x[:2], y[:2], x[2:], y[2:]))
        maml.meta_update(tasks)
        pooled_x, pooled_y = torch.cat([t[0] for t in tasks] + [t[2] for t in tasks]), torch.cat(
            [t[1] for t in tasks] + [t[3] for t in tasks])
        erm_optimizer.zero_grad()
        F.mse_loss(erm_model(pooled_x)[0], pooled_y).backward()
        erm_optimizer.step()
    return maml, erm_model


# ----------------------------------------------------------------------------- adaptation works
def test_repeated_updates_lower_the_loss_on_held_out_data_of_the_task(task_data):
    (support_x, support_y), (held_x, held_y) = task_data
    model = small_ssm()
    adapter = Adapter(model, AdaptationConfig(learning_rate=3e-2, num_steps=5, optimizer="adam", mode="accumulate"))
    initial = held_out_loss(model, held_x, held_y)
    for _ in range(5):
        log = adapter.update_step(support_x, support_y)
        assert log["loss_after"] < log["loss_before"] and not log["rolled_back"] and log["steps"] == 5
    final = held_out_loss(model, held_x, held_y)
    assert final < 0.2 * initial, (initial, final)


def test_meta_learned_weights_gain_more_from_one_update_than_erm_weights(meta_trained):
    maml, erm_model = meta_trained
    generator = torch.Generator().manual_seed(123)
    adapter = Adapter(small_ssm(seed=5), AdaptationConfig(learning_rate=maml.inner_lr, num_steps=1))
    gains, after = {"maml": [], "erm": []}, {"maml": [], "erm": []}
    for task in sample_linear_tasks(8, generator):
        support_x, support_y = rollout(task, 2, 32, generator)
        held_x, held_y = rollout(task, 4, 32, generator)
        for name, reference in (("maml", maml.params()), ("erm", erm_model.state_dict())):
            adapter.set_reference(reference)
            before = held_out_loss(adapter.model, held_x, held_y)
            adapter.update_step(support_x, support_y)
            after[name].append(held_out_loss(adapter.model, held_x, held_y))
            gains[name].append(before - after[name][-1])
    mean = {name: sum(values) / len(values) for name, values in gains.items()}
    assert mean["maml"] > 0 and mean["maml"] > 3 * max(mean["erm"], 0.0), mean
    assert sum(after["maml"]) < 0.7 * sum(after["erm"]), after


# ----------------------------------------------------------------------------- modes
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_restart_mode_is_idempotent_and_accumulate_is_not(task_data, optimizer):
    (support_x, support_y), _ = task_data
    results = {}
    for mode in ("restart", "accumulate"):
        config = AdaptationConfig(learning_rate=1e-2, num_steps=3, optimizer=optimizer, mode=mode)
        adapter = Adapter(small_ssm(), config)
        first_log = adapter.update_step(support_x, support_y)
        first = adapter.adapted_params()
        second_log = adapter.update_step(support_x, support_y)
        second = adapter.adapted_params()
        results[mode] = (first_log, second_log, all(torch.equal(first[n], second[n]) for n in first))
    first_log, second_log, identical = results["restart"]
    assert identical and first_log["loss_after"] == second_log["loss_after"]
    assert first_log["loss_before"] == second_log["loss_before"]
    first_log, second_log, identical = results["accumulate"]
    assert not identical and second_log["loss_before"] == pytest.approx(first_log["loss_after"], rel=1e-6)
    assert second_log["loss_after"] < first_log["loss_after"]


def test_reset_restores_the_initial_weights_bitwise_and_clears_optimizer_state(task_data):
    (support_x, support_y), _ = task_data
    config = AdaptationConfig(learning_rate=1e-2, num_steps=3, optimizer="adam", mode="accumulate")
    model = small_ssm()
    initial = snapshot(model)
    adapter = Adapter(model, config)
    for _ in range(3):
        adapter.update_step(support_x, support_y)
    adapter.reset()
    assert_same_weights(model, initial)
    adapter.update_step(support_x, support_y)
    fresh = Adapter(small_ssm(), config)
    fresh.update_step(support_x, support_y)
    assert_same_weights(model, fresh.adapted_params())  # no Adam moments survived the reset


# ----------------------------------------------------------------------------- safeguards
def test_nan_in_the_batch_leaves_the_weights_untouched(task_data):
    (support_x, support_y), _ = task_data
    adapter = Adapter(small_ssm(), AdaptationConfig(learning_rate=1e-2, num_steps=2))
    adapter.update_step(support_x, support_y)  # move away from theta*: a rollback must not go back there
    before = adapter.adapted_params()
    poisoned = support_x.clone()
    poisoned[1, 5, 0] = float("nan")
    log = adapter.update_step(poisoned, support_y)
    assert log["rolled_back"] and log["steps"] == 0
    assert_same_weights(adapter.model, before)
    assert adapter.update_step(support_x, support_y)["rolled_back"] is False


@pytest.mark.parametrize("optimizer, learning_rate", [("sgd", 1e30), ("adam", 1e30)])
def test_a_huge_learning_rate_never_leaves_non_finite_weights(task_data, optimizer, learning_rate):
    (support_x, support_y), _ = task_data
    model = small_ssm()
    initial = snapshot(model)
    adapter = Adapter(model, AdaptationConfig(learning_rate=learning_rate, num_steps=4, optimizer=optimizer,
                                              mode="accumulate"))
    for _ in range(3):
        log = adapter.update_step(support_x, support_y)
        assert log["rolled_back"]
        assert all(torch.isfinite(param).all() for param in model.parameters())
    assert_same_weights(model, initial)


def test_an_exception_during_an_update_restores_the_weights_and_propagates(task_data):
    (support_x, support_y), _ = task_data
    calls = []

    def failing_on_the_third_call(output, target):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("loss failed")
        return F.mse_loss(output, target)

    model = small_ssm()
    initial = snapshot(model)
    adapter = Adapter(model, AdaptationConfig(learning_rate=1e-2, num_steps=5), loss_fn=failing_on_the_third_call)
    with pytest.raises(RuntimeError, match="loss failed"):
        adapter.update_step(support_x, support_y)
    assert_same_weights(model, initial)
    assert all(param.grad is None for param in model.parameters())


def test_max_loss_increase_rolls_back_an_update_that_raises_the_loss():
    x = torch.linspace(-1, 1, 16).unsqueeze(-1)
    y = 2.0 * x

    def overshooting_adapter(max_loss_increase):
        model = nn.Linear(1, 1)
        with torch.no_grad():
            model.weight.fill_(0.0)
            model.bias.fill_(0.0)
        # the loss is quadratic in the weight with curvature 2 * mean(x^2) ~ 0.76: lr 5 overshoots by ~2.8x
        config = AdaptationConfig(learning_rate=5.0, max_loss_increase=max_loss_increase)
        return Adapter(model, config)

    unguarded = overshooting_adapter(None)
    log = unguarded.update_step(x, y)
    assert not log["rolled_back"] and log["loss_after"] > 2.0 * log["loss_before"]
    guarded = overshooting_adapter(1.5)
    log = guarded.update_step(x, y)
    assert log["rolled_back"] and log["steps"] == 0 and log["loss_after"] == log["loss_before"]
    assert guarded.model.weight.item() == 0.0 and guarded.model.bias.item() == 0.0
    assert "hidden_state" not in log  # stateless model


def test_a_rejected_restart_update_leaves_theta_star_not_the_previous_adaptation():
    x = torch.linspace(-1, 1, 16).unsqueeze(-1)
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
        model.bias.fill_(0.0)
    adapter = Adapter(model, AdaptationConfig(learning_rate=5.0, max_loss_increase=1.0))
    small = 0.1 * x  # weight curvature 2 * mean(x^2) ~ 0.0076: lr 5 helps; the bias gradient is 0 (odd target)
    assert not adapter.update_step(small, 0.5 * small)["rolled_back"]
    assert model.weight.item() > 0.0
    log = adapter.update_step(x, 20.0 * x + 3.0)  # restarts from theta* = 0; curvatures 0.76 and 2 overshoot
    assert log["rolled_back"] and log["steps"] == 0
    assert model.weight.item() == 0.0 and model.bias.item() == 0.0
    assert log["loss_after"] == log["loss_before"]


@pytest.mark.parametrize("selector", [["out_proj.weight", "out_proj.bias"], lambda name: name.startswith("out_proj")])
def test_frozen_parameters_stay_bitwise_identical(task_data, selector):
    (support_x, support_y), _ = task_data
    model = small_ssm()
    initial = snapshot(model)
    adapter = Adapter(model, AdaptationConfig(learning_rate=1e-2, num_steps=3, optimizer="adam",
                                              mode="accumulate", params_to_adapt=selector))
    for _ in range(2):
        adapter.update_step(support_x, support_y)
    for name, param in model.named_parameters():
        assert torch.equal(param, initial[name]) != name.startswith("out_proj"), name
        assert param.grad is None, name


# ----------------------------------------------------------------------------- hidden states
def test_returned_hidden_state_is_the_state_after_the_sequence_under_the_final_weights(task_data):
    (support_x, support_y), _ = task_data
    model = small_ssm()
    adapter = Adapter(model, AdaptationConfig(learning_rate=1e-2, num_steps=3, optimizer="adam"))
    start = torch.randn(support_x.shape[0], model.state_dim, generator=torch.Generator().manual_seed(3))
    reset = torch.zeros(support_x.shape[:2])
    reset[0, 10] = reset[2, 20] = 1.0
    log = adapter.update_step(support_x, support_y, hidden_state=start, reset=reset)
    assert not log["rolled_back"] and not log["hidden_state"].requires_grad
    expected = step_loop(model, support_x, start, reset)
    torch.testing.assert_close(log["hidden_state"], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(log["hidden_state"], step_loop(small_ssm(), support_x, start, reset), atol=1e-4)

    step_log = adapter.update_step(support_x[:, 0], support_y[:, 0], hidden_state=start)
    torch.testing.assert_close(step_log["hidden_state"], model(support_x[:, 0], start)[1].detach())


def test_updates_run_with_gradients_even_under_no_grad(task_data):
    (support_x, support_y), _ = task_data
    adapter = Adapter(small_ssm(), AdaptationConfig(learning_rate=1e-2, num_steps=2))
    with torch.no_grad():
        log = adapter.update_step(support_x, support_y)
    assert log["steps"] == 2 and log["grad_norm"] > 0 and log["loss_after"] < log["loss_before"]


# ----------------------------------------------------------------------------- online
def clock_transition(t: int, num_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = (t, env, 1), y_t = (t, -t): transitions that can be located in the window."""
    env = torch.arange(num_envs, dtype=torch.float32)
    x = torch.stack([torch.full((num_envs,), float(t)), env, torch.ones(num_envs)], -1)
    return x * 0.01, torch.stack([x[:, 0], -x[:, 0]], -1) * 0.01


def test_online_window_keeps_only_the_most_recent_transitions():
    adapter = Adapter(small_ssm(), AdaptationConfig(learning_rate=1e-3, window=5, update_every=2))
    online = OnlineAdapter(adapter, num_envs=2)
    seen_lengths = []
    update_step = adapter.update_step

    def recording_update_step(x, y, hidden_state=None, reset=None):
        seen_lengths.append(x.shape[1])
        return update_step(x, y, hidden_state, reset)

    adapter.update_step = recording_update_step
    for t in range(12):
        log = online.observe(*clock_transition(t, 2), episode_start=t == 0)
        assert (log is not None) == (t % 2 == 1)
        assert len(online) == min(t + 1, 5)
        x, y, entering, reset = online.window()
        expected = torch.stack([clock_transition(s, 2)[0] for s in range(max(0, t - 4), t + 1)], 1)
        torch.testing.assert_close(x, expected, rtol=0, atol=0)
        assert reset[:, 0].tolist() == [t < 5, t < 5] and not reset[:, 1:].any()
        assert entering.shape == (2, 8)
    assert seen_lengths == [2, 4, 5, 5, 5, 5]


@pytest.mark.parametrize("update_every", [1, 3])
def test_online_state_resets_at_episode_starts(update_every):
    """num_steps=0 keeps the weights fixed, so the tracked state must equal a run over the current episode only."""
    model = small_ssm()
    adapter = Adapter(model, AdaptationConfig(num_steps=0, window=6, update_every=update_every))
    online = OnlineAdapter(adapter, num_envs=2)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(2, 14, INPUT_DIM, generator=generator)
    y = torch.randn(2, 14, TARGET_DIM, generator=generator)
    starts = torch.zeros(2, 14, dtype=torch.bool)
    starts[:, 0] = True
    starts[0, 9] = True  # env 0 begins a new episode at t = 9, env 1 does not
    for t in range(14):
        online.observe(x[:, t], y[:, t], episode_start=starts[:, t])
    zero = model.init_hidden(1)
    expected = torch.cat([step_loop(model, x[:1, 9:], zero), step_loop(model, x[1:], zero)])
    torch.testing.assert_close(online.hidden_state, expected, atol=1e-5, rtol=1e-5)

    online.reset_episode(torch.tensor([False, True]))
    assert online.hidden_state[1].abs().max() == 0 and online.hidden_state[0].abs().max() > 0
    online.observe(x[:, 0], y[:, 0])  # env 1's transition is an episode start without being told again
    if update_every == 1:
        assert online.window()[3][:, -1].tolist() == [False, True]
    expected_env1 = step_loop(model, x[1:, :1], zero)
    torch.testing.assert_close(online.hidden_state[1:], expected_env1, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("window_state", ["carried", "zero"])
def test_online_update_starts_the_window_from_the_configured_state(window_state):
    model = small_ssm()
    initial = copy.deepcopy(model)
    adapter = Adapter(model, AdaptationConfig(learning_rate=1e-2, window=4, update_every=6, window_state=window_state))
    online = OnlineAdapter(adapter)
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(6, INPUT_DIM, generator=generator), torch.randn(6, TARGET_DIM, generator=generator)
    seen = []
    update_step = adapter.update_step

    def recording_update_step(x, y, hidden_state=None, reset=None):
        seen.append(hidden_state)
        return update_step(x, y, hidden_state, reset)

    adapter.update_step = recording_update_step
    for t in range(6):
        online.observe(x[t], y[t], episode_start=t == 0)
    if window_state == "zero":
        assert seen == [None]
        expected = step_loop(model, x[None, 2:], model.init_hidden(1))
    else:
        carried = step_loop(initial, x[None, :2], model.init_hidden(1))  # the state under the weights of then
        torch.testing.assert_close(seen[0], carried, atol=1e-6, rtol=1e-5)
        expected = step_loop(model, x[None, 2:], seen[0])
    torch.testing.assert_close(online.hidden_state, expected, atol=1e-5, rtol=1e-5)


def test_online_adaptation_from_meta_learned_weights_improves_predictions(meta_trained):
    maml, _ = meta_trained
    meta_learned = snapshot(maml.model)
    adapter = Adapter(copy.deepcopy(maml.model), AdaptationConfig(learning_rate=maml.inner_lr, window=32))
    online = OnlineAdapter(adapter)
    generator = torch.Generator().manual_seed(9)
    task = sample_linear_tasks(1, generator)[0]
    x, y = rollout(task, 1, 40, generator)
    held_x, held_y = rollout(task, 8, 32, generator)
    before = held_out_loss(adapter.model, held_x, held_y)
    for t in range(40):
        log = online.observe(x[0, t], y[0, t], episode_start=t == 0)
        assert not log["rolled_back"]
    after = held_out_loss(adapter.model, held_x, held_y)
    assert after < 0.7 * before, (before, after)
    assert_same_weights(adapter.model, online.params())
    assert_same_weights(maml.model, meta_learned)  # the Adapter adapted a copy
    online.reset()
    assert_same_weights(adapter.model, meta_learned)
    assert len(online) == 0 and online.hidden_state.abs().max() == 0


def test_online_adapter_works_with_a_stateless_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))
    online = OnlineAdapter(Adapter(model, AdaptationConfig(learning_rate=0.05, num_steps=5, window=8,
                                                           mode="accumulate")))
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(2, 3, generator=generator)
    logs = []
    for _ in range(30):
        x_t = torch.randn(3, generator=generator)
        logs.append(online.observe(x_t, weight @ x_t, episode_start=False))
    assert online.hidden_state is None and online.window()[2:] == (None, None)
    assert logs[-1]["loss_after"] < 0.5 * logs[0]["loss_before"]


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("field, value", [
    ("learning_rate", 0.0), ("learning_rate", float("nan")), ("num_steps", -1), ("num_steps", 1.5),
    ("grad_clip_norm", 0.0), ("optimizer", "rmsprop"), ("window", 0), ("update_every", 0), ("mode", "online"),
    ("params_to_adapt", "out_proj.weight"), ("params_to_adapt", []),
    ("max_loss_increase", 0.5),
])
def test_bad_config_values_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AdaptationConfig(**{field: value})


def test_bad_arguments_raise_value_error(task_data):
    (support_x, support_y), _ = task_data
    with pytest.raises(ValueError, match="unknown parameters"):
        Adapter(small_ssm(), AdaptationConfig(params_to_adapt=["no_such.weight"]))
    adapter = Adapter(small_ssm())
    with pytest.raises(ValueError, match="leading dims"):
        adapter.update_step(support_x, support_y[:, :-1])
    with pytest.raises(ValueError, match="missing parameters"):
        adapter.set_reference({"D": torch.ones(8)})
    with pytest.raises(ValueError, match="stateless"):
        Adapter(nn.Linear(3, 2)).update_step(support_x, support_y, hidden_state=torch.zeros(4, 8))
    online = OnlineAdapter(adapter, num_envs=2)
    with pytest.raises(ValueError, match=r"x_t \(E, D_in\)"):
        online.observe(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        online.observe(torch.full((2, 3), float("nan")), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="episode_start"):
        online.observe(torch.zeros(2, 3), torch.zeros(2, 2), episode_start=torch.tensor([True, False, True]))


# ----------------------------------------------------------------------------- Adapter.from_meta


def _meta_with_learned_rates(adapt_params=None) -> MetaMAML:
    torch.manual_seed(0)
    model = SSM(state_dim=6, input_dim=3, output_dim=2, hidden_dim=8)
    meta = MetaMAML(model, inner_lr=0.05, learn_inner_lr=True, adapt_params=adapt_params, inner_grad_clip=0.2)
    with torch.no_grad():  # distinct rates per entry, as Meta-SGD learns them
        for rate in meta.inner_lrs.values():
            rate.uniform_(0.01, 0.2)
    return meta


@pytest.mark.parametrize("adapt_params", [None, ["out_proj.weight", "out_proj.bias"]])
def test_from_meta_takes_one_step_equal_to_meta_adapt_task(adapt_params):
    meta = _meta_with_learned_rates(adapt_params)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 10, 3, generator=generator), torch.randn(4, 10, 2, generator=generator)
    h0 = torch.randn(4, 6, generator=generator)
    expected = meta.adapt_task(x, y, h0)
    adapter = Adapter.from_meta(meta, AdaptationConfig(num_steps=1, mode="restart"))
    log = adapter.update_step(x, y, hidden_state=h0)
    assert log["steps"] == 1 and log["grad_norm"] > 0.2  # the clip was active
    for name, param in adapter.model.named_parameters():
        torch.testing.assert_close(param.detach(), expected[name].detach(), atol=1e-6, rtol=0)
    assert adapter.model is not meta.model
    if adapt_params is not None:
        frozen = dict(meta.model.named_parameters())["in_proj.weight"]
        torch.testing.assert_close(dict(adapter.model.named_parameters())["in_proj.weight"], frozen)


def test_adapter_applies_per_parameter_rates():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    rates = {"weight": torch.tensor([[0.1, 1.0]])}
    adapter = Adapter(model, AdaptationConfig(learning_rate=0.5), learning_rates=rates)
    x, y = torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0]])
    adapter.update_step(x, y)  # gradient of (w.x - 1)^2 at w = 0 is (-2, -2)
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[0.2, 2.0]]))
