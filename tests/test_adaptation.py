"""Adapter and OnlineAdapter: held-out improvement, meta-learned vs ERM weights, modes, safeguards, states."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adaptation import AdaptationConfig, Adapter, OnlineAdaptationConfig, OnlineAdapter
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
        pooled_x, pooled_y = (
            torch.cat([t[0] for t in tasks] + [t[2] for t in tasks]),
            torch.cat([t[1] for t in tasks] + [t[3] for t in tasks]),
        )
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
    adapter = Adapter(
        model, AdaptationConfig(learning_rate=learning_rate, num_steps=4, optimizer=optimizer, mode="accumulate")
    )
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
    adapter = Adapter(
        model,
        AdaptationConfig(
            learning_rate=1e-2, num_steps=3, optimizer="adam", mode="accumulate", params_to_adapt=selector
        ),
    )
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
def run_online(online: OnlineAdapter, model: SSM, x: torch.Tensor, y: torch.Tensor, starts: torch.Tensor) -> list:
    """Feed (E, T, ·) transitions, advancing the state under the current weights between updates (as a
    planner's `observe` does); returns the logs and leaves the final state in `online_state`."""
    hidden = model.init_hidden(x.shape[0])
    params = None
    logs = []
    for t in range(x.shape[1]):
        hidden = torch.where(starts[:, t, None], model.init_hidden(x.shape[0]), hidden)
        before = hidden
        weights = params or {name: p.detach().expand(x.shape[0], *p.shape) for name, p in model.named_parameters()}
        with torch.no_grad():
            hidden = torch.func.vmap(
                lambda w, xe, he: torch.func.functional_call(model, w, (xe[None], he[None]))[1][0]
            )(weights, x[:, t], hidden)
        log = online.observe(x[:, t], y[:, t], starts[:, t], before)
        if log is not None:
            params, hidden = log["params"], log["hidden_state"]
        logs.append(log)
    run_online.final_state = hidden
    return logs


def test_online_window_keeps_only_the_most_recent_transitions():
    online = OnlineAdapter(
        MetaMAML(small_ssm()),
        OnlineAdaptationConfig(window=5, update_every=2, window_state="carried", max_loss_increase=None),
        num_envs=2,
    )
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 12, INPUT_DIM, generator=generator), torch.randn(2, 12, TARGET_DIM, generator=generator)
    starts = torch.zeros(2, 12, dtype=torch.bool)
    starts[:, 0] = True
    logs = run_online(online, online.meta.model, x, y, starts)
    assert [log is not None for log in logs] == [t % 2 == 1 for t in range(12)]
    window_x, _, _, reset = online.window()
    torch.testing.assert_close(window_x, x[:, 7:], rtol=0, atol=0)
    assert len(online) == 5 and not reset.any()


@pytest.mark.parametrize("update_every", [1, 3])
def test_memory_only_state_equals_a_step_loop_over_the_window(update_every):
    """num_steps=0 keeps theta*: after an update the state is the window's, from init_hidden, resets included."""
    model = small_ssm()
    online = OnlineAdapter(
        MetaMAML(model),
        OnlineAdaptationConfig(num_steps=0, window=6, update_every=update_every, window_state="zero"),
        num_envs=2,
    )
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(2, 12, INPUT_DIM, generator=generator), torch.randn(2, 12, TARGET_DIM, generator=generator)
    starts = torch.zeros(2, 12, dtype=torch.bool)
    starts[:, 0] = True
    starts[0, 9] = True  # env 0 begins a new episode at t = 9, env 1 does not
    logs = run_online(online, model, x, y, starts)
    assert logs[-1] is not None and not logs[-1]["rolled_back"].any()
    zero = model.init_hidden(1)
    expected = torch.cat([step_loop(model, x[:1, 9:], zero), step_loop(model, x[1:, 6:], zero)])
    torch.testing.assert_close(run_online.final_state, expected, atol=1e-5, rtol=1e-5)


def test_online_update_is_meta_adapt_task_on_each_episodes_window():
    meta = MetaMAML(small_ssm(), inner_lr=0.05, learn_inner_lr=True, inner_grad_clip=1.0)
    online = OnlineAdapter(
        meta,
        OnlineAdaptationConfig(num_steps=2, window=4, update_every=4, window_state="carried", max_loss_increase=None),
        num_envs=3,
    )
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(3, 4, INPUT_DIM, generator=generator), torch.randn(3, 4, TARGET_DIM, generator=generator)
    entering = torch.randn(3, 8, generator=generator)
    starts = torch.zeros(3, 4, dtype=torch.bool)
    starts[2, 2] = True
    log = None
    for t in range(4):
        log = online.observe(x[:, t], y[:, t], starts[:, t], entering if t == 0 else torch.zeros(3, 8))
    for episode in range(3):
        expected = meta.adapt_task(
            x[episode : episode + 1],
            y[episode : episode + 1],
            entering[episode : episode + 1],
            num_steps=2,
            reset=starts[episode : episode + 1],
        )
        assert not log["rolled_back"][episode]
        for name, value in expected.items():
            torch.testing.assert_close(log["params"][name][episode], value.detach(), atol=1e-6, rtol=1e-5)


def test_online_adaptation_from_meta_learned_weights_lowers_held_out_loss(meta_trained):
    maml, _ = meta_trained
    online = OnlineAdapter(
        maml, OnlineAdaptationConfig(window=32, update_every=40, window_state="carried", max_loss_increase=None)
    )
    generator = torch.Generator().manual_seed(9)
    task = sample_linear_tasks(1, generator)[0]
    x, y = rollout(task, 1, 40, generator)
    held_x, held_y = rollout(task, 8, 32, generator)
    starts = torch.zeros(1, 40, dtype=torch.bool)
    starts[:, 0] = True
    log = run_online(online, maml.model, x, y, starts)[-1]
    assert not log["rolled_back"].any()
    adapted = {name: value[0] for name, value in log["params"].items()}
    with torch.no_grad():
        before = F.mse_loss(maml.model(held_x)[0], held_y).item()
        after = F.mse_loss(torch.func.functional_call(maml.model, adapted, (held_x,))[0], held_y).item()
    assert after < 0.7 * before, (before, after)


def test_an_update_that_raises_the_window_loss_is_rolled_back_to_theta_star():
    meta = MetaMAML(small_ssm(), inner_lr=50.0)  # a step this large overshoots
    online = OnlineAdapter(
        meta,
        OnlineAdaptationConfig(window=8, update_every=8, window_state="carried", max_loss_increase=1.0),
        num_envs=2,
    )
    generator = torch.Generator().manual_seed(6)
    x, y = torch.randn(2, 8, INPUT_DIM, generator=generator), torch.randn(2, 8, TARGET_DIM, generator=generator)
    starts = torch.zeros(2, 8, dtype=torch.bool)
    log = run_online(online, meta.model, x, y, starts)[-1]
    assert log["rolled_back"].all()
    for name, value in meta.params().items():
        assert torch.equal(log["params"][name][0], value.detach())
    torch.testing.assert_close(log["loss_after"], log["loss_before"])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "field, value",
    [
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("num_steps", -1),
        ("num_steps", 1.5),
        ("grad_clip_norm", 0.0),
        ("optimizer", "rmsprop"),
        ("mode", "online"),
        ("params_to_adapt", "out_proj.weight"),
        ("params_to_adapt", []),
        ("max_loss_increase", 0.5),
    ],
)
def test_bad_config_values_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be .*, got "):
        AdaptationConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_steps", -1),
        ("window", 0),
        ("update_every", 0),
        ("update_every", 2.0),
        ("window_state", "sometimes"),
        ("max_loss_increase", 0.5),
        ("max_loss_increase", float("inf")),
    ],
)
def test_bad_online_settings_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be .*, got "):
        OnlineAdaptationConfig(**{field: value})


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
    online = OnlineAdapter(MetaMAML(small_ssm()), num_envs=2)
    with pytest.raises(ValueError, match=r"x_t \(E, D_in\)"):
        online.observe(torch.zeros(3), torch.zeros(2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, 8))
    with pytest.raises(ValueError, match="non-finite"):
        online.observe(
            torch.full((2, 3), float("nan")), torch.zeros(2, 2), torch.zeros(2, dtype=torch.bool), torch.zeros(2, 8)
        )
    with pytest.raises(ValueError, match="stateful"):
        OnlineAdapter(MetaMAML(nn.Linear(3, 2)))


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
