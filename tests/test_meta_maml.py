"""MetaMAML: seed example, meta-gradients against independent computations, vmap == per task, options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.gru import GRUModel
from core.mlp import MLPModel
from core.parameters import is_stateful
from core.ssm import SSM
from meta_rl.meta_maml import MetaMAML
from meta_rl.sinusoid import sample_sinusoid_tasks, sinusoid_mlp


def tiny_ssm(seed: int = 0, dtype=torch.float32) -> SSM:
    torch.manual_seed(seed)
    return SSM(state_dim=4, input_dim=3, output_dim=2, hidden_dim=8).to(dtype)


def tiny_complex_ssm(seed: int = 0, dtype=torch.float32) -> SSM:
    torch.manual_seed(seed)
    return SSM(state_dim=4, input_dim=3, output_dim=2, hidden_dim=8, eigenvalues="complex").to(dtype)


def tiny_gru(seed: int = 0, dtype=torch.float32) -> GRUModel:
    torch.manual_seed(seed)
    return GRUModel(state_dim=4, input_dim=3, output_dim=2).to(dtype)


def tiny_mlp_world_model(seed: int = 0, dtype=torch.float32) -> MLPModel:
    torch.manual_seed(seed)
    return MLPModel(input_dim=3, output_dim=2, hidden_dim=8).to(dtype)


def tiny_mlp(seed: int = 0, dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).to(dtype)


def sequence_tasks(num_tasks: int, batch: int = 2, steps: int = 6, seed: int = 0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    return [
        (draw(batch, steps, 3), draw(batch, steps, 2), draw(batch, steps, 3), draw(batch, steps, 2))
        for _ in range(num_tasks)
    ]


def flat_tasks(num_tasks: int, seed: int = 0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return [tuple(torch.randn(5, d, generator=generator, dtype=dtype) for d in (3, 2, 3, 2)) for _ in range(num_tasks)]


def reference_meta_gradient(model, tasks, inner_lr, num_steps, first_order):
    """Unbatched: explicit inner SGD with torch.autograd.grad(create_graph=True), one task at a time."""
    params = dict(model.named_parameters())
    stateful = is_stateful(model)

    def predict(weights, x):
        if stateful:
            return functional_call(model, weights, (x, model.init_hidden(x.shape[0])))[0]
        return functional_call(model, weights, (x,))

    total = 0.0
    for support_x, support_y, query_x, query_y in tasks:
        fast = dict(params)
        for _ in range(num_steps):
            loss = F.mse_loss(predict(fast, support_x), support_y)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
            fast = {name: value - inner_lr * g for (name, value), g in zip(fast.items(), grads, strict=True)}
        total = total + F.mse_loss(predict(fast, query_x), query_y)
    total = total / len(tasks)
    return dict(zip(params, torch.autograd.grad(total, list(params.values())), strict=True))


def maml_gradient(learner, tasks):
    loss = learner.meta_loss(tasks)
    names = list(learner.params())
    return dict(zip(names, torch.autograd.grad(loss, list(learner.params().values())), strict=True))


def test_seed_readme_example():
    base_model = SSM(state_dim=128, input_dim=64, output_dim=32, device="cpu")
    maml = MetaMAML(model=base_model, inner_lr=0.01)
    support_x_seq = torch.randn(16, 10, 64)
    support_y_seq = torch.randn(16, 10, 32)
    initial_hidden = base_model.init_hidden(batch_size=16)
    adapted_params = maml.adapt_task(support_x_seq, support_y_seq, initial_hidden_state=initial_hidden, num_steps=5)
    test_x_seq = torch.randn(8, 10, 64)
    current_hidden_test = base_model.init_hidden(batch_size=8)
    outputs_seq = []
    with torch.no_grad():
        for t in range(test_x_seq.shape[1]):
            step_output, current_hidden_test = maml.functional_forward(
                test_x_seq[:, t, :], current_hidden_test, params=adapted_params
            )
            outputs_seq.append(step_output)
    final_output = torch.stack(outputs_seq, dim=1)
    assert final_output.shape == (8, 10, 32)


WORLD_MODELS = [
    (tiny_ssm, sequence_tasks),
    (tiny_complex_ssm, sequence_tasks),
    (tiny_gru, sequence_tasks),
    (tiny_mlp_world_model, sequence_tasks),
]


@pytest.mark.parametrize("make_model, make_tasks", [*WORLD_MODELS, (tiny_mlp, flat_tasks)])
@pytest.mark.parametrize("num_steps", [1, 2])
def test_second_order_gradient_equals_unbatched_double_backward(make_model, make_tasks, num_steps):
    model = make_model()
    tasks = make_tasks(3)
    learner = MetaMAML(model, inner_lr=0.1, num_inner_steps=num_steps)
    expected = reference_meta_gradient(model, tasks, 0.1, num_steps, first_order=False)
    for name, value in maml_gradient(learner, tasks).items():
        torch.testing.assert_close(value, expected[name], atol=1e-5, rtol=1e-4, msg=f"meta-gradient of {name}")


@pytest.mark.parametrize("make_model, make_tasks", [*WORLD_MODELS, (tiny_mlp, flat_tasks)])
def test_second_order_gradient_equals_finite_differences_in_float64(make_model, make_tasks):
    model = make_model(dtype=torch.float64)
    tasks = make_tasks(2, dtype=torch.float64)
    learner = MetaMAML(model, inner_lr=0.3, num_inner_steps=2)
    gradient = maml_gradient(learner, tasks)
    generator = torch.Generator().manual_seed(1)
    params = learner.params()
    for _ in range(3):
        direction = {name: torch.randn(p.shape, generator=generator, dtype=torch.float64) for name, p in params.items()}
        analytic = sum((gradient[name] * direction[name]).sum() for name in params)
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for name, p in params.items():
                    p.add_(sign * 1e-6 * direction[name])
            values.append(learner.meta_loss(tasks).detach())
            with torch.no_grad():
                for name, p in params.items():
                    p.sub_(sign * 1e-6 * direction[name])
        numeric = (values[0] - values[1]) / 2e-6
        torch.testing.assert_close(analytic, numeric, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("make_model, make_tasks", [(tiny_ssm, sequence_tasks), (tiny_mlp, flat_tasks)])
def test_first_order_equals_detached_inner_gradients_and_differs_from_second_order(make_model, make_tasks):
    model = make_model()
    tasks = make_tasks(3)
    first = maml_gradient(MetaMAML(model, inner_lr=0.5, first_order=True, num_inner_steps=2), tasks)
    second = maml_gradient(MetaMAML(model, inner_lr=0.5, num_inner_steps=2), tasks)
    expected = reference_meta_gradient(model, tasks, 0.5, 2, first_order=True)
    for name, value in first.items():
        torch.testing.assert_close(value, expected[name], atol=1e-5, rtol=1e-4)
    difference = max((first[name] - second[name]).abs().max().item() for name in first)
    assert difference > 1e-3


def test_vmap_path_equals_per_task_path_with_ragged_tasks_and_resets():
    model = tiny_ssm()
    tasks = sequence_tasks(3, steps=6) + sequence_tasks(2, batch=3, steps=9, seed=1)
    generator = torch.Generator().manual_seed(2)
    tasks = [
        (
            *task,
            torch.rand(task[0].shape[:2], generator=generator) < 0.2,
            torch.rand(task[2].shape[:2], generator=generator) < 0.2,
        )
        for task in tasks
    ]
    learner = MetaMAML(model, inner_lr=0.2, num_inner_steps=2)
    batched = learner.meta_loss(tasks)
    per_task = 0.0
    for sx, sy, qx, qy, s_reset, q_reset in tasks:
        fast = learner.adapt_task(sx, sy, num_steps=2, reset=s_reset)
        output, _ = learner.functional_forward(qx, model.init_hidden(qx.shape[0]), fast, reset=q_reset)
        per_task = per_task + F.mse_loss(output, qy)
    per_task = per_task / len(tasks)
    torch.testing.assert_close(batched, per_task, atol=1e-6, rtol=1e-5)
    params = list(learner.params().values())
    for g_batched, g_loop in zip(
        torch.autograd.grad(batched, params), torch.autograd.grad(per_task, params), strict=True
    ):
        torch.testing.assert_close(g_batched, g_loop, atol=1e-5, rtol=1e-4)


def test_adapt_task_lowers_support_loss_and_keeps_graph_for_second_order():
    model = tiny_ssm()
    learner = MetaMAML(model, inner_lr=0.5)
    support_x, support_y, _, _ = sequence_tasks(1)[0]
    hidden = model.init_hidden(2)
    before = F.mse_loss(model(support_x, hidden)[0], support_y)
    fast = learner.adapt_task(support_x, support_y, initial_hidden_state=hidden, num_steps=5)
    after = F.mse_loss(learner.functional_forward(support_x, hidden, fast)[0], support_y)
    assert after < before * 0.95
    assert fast["out_proj.weight"].requires_grad and fast["out_proj.weight"].grad_fn is not None


def test_meta_update_lowers_the_outer_loss_on_fixed_tasks():
    model = tiny_ssm()
    tasks = sequence_tasks(4)
    learner = MetaMAML(model, inner_lr=0.1, outer_lr=0.01)
    losses = [learner.meta_update(tasks) for _ in range(30)]
    assert losses[-1] < 0.9 * losses[0]


def test_meta_sgd_learns_inner_rates_and_uses_them():
    model = tiny_ssm()
    learner = MetaMAML(model, inner_lr=0.1, outer_lr=0.01, learn_inner_lr=True)
    assert set(learner.inner_lrs) == set(learner.params())
    before = {name: lr.detach().clone() for name, lr in learner.inner_lrs.items()}
    learner.meta_update(sequence_tasks(3))
    changed = [name for name, lr in learner.inner_lrs.items() if not torch.equal(lr, before[name])]
    assert len(changed) == len(before)
    support_x, support_y, _, _ = sequence_tasks(1)[0]
    fast = learner.adapt_task(support_x, support_y)
    params = learner.params()
    loss = F.mse_loss(model(support_x, model.init_hidden(2))[0], support_y)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    name = "out_proj.weight"
    torch.testing.assert_close(fast[name], params[name] - learner.inner_lrs[name] * grads[name])


def test_frozen_parameters_stay_put_in_the_inner_loop_but_get_outer_gradients():
    model = tiny_ssm()
    adapted = ["out_proj.weight", "out_proj.bias"]
    learner = MetaMAML(model, inner_lr=0.5, outer_lr=0.01, adapt_params=adapted)
    support_x, support_y, _, _ = sequence_tasks(1)[0]
    fast = learner.adapt_task(support_x, support_y, num_steps=3)
    params = learner.params()
    for name, value in fast.items():
        if name in adapted:
            assert not torch.equal(value, params[name]), name
        else:
            assert value is params[name], name
    before = params["in_proj.weight"].detach().clone()
    learner.meta_update(sequence_tasks(2))
    assert not torch.equal(model.in_proj.weight, before)


def test_inner_gradient_clipping_caps_the_step_and_keeps_its_direction():
    model = tiny_ssm(dtype=torch.float64)
    support_x, support_y, _, _ = sequence_tasks(1, dtype=torch.float64)[0]
    plain = MetaMAML(model, inner_lr=0.5).adapt_task(support_x, support_y)
    clipped = MetaMAML(model, inner_lr=0.5, inner_grad_clip=1e-3).adapt_task(support_x, support_y)
    params = dict(model.named_parameters())
    plain_step = torch.cat([(plain[n] - p).flatten() for n, p in params.items()])
    clipped_step = torch.cat([(clipped[n] - p).flatten() for n, p in params.items()])
    assert plain_step.norm() > 0.5 * 1e-3 * 10
    torch.testing.assert_close(clipped_step.norm().item(), 0.5 * 1e-3, rtol=1e-6, atol=0)
    torch.testing.assert_close(clipped_step / clipped_step.norm(), plain_step / plain_step.norm(), rtol=1e-6, atol=1e-9)


def test_predicate_selects_parameters():
    learner = MetaMAML(tiny_ssm(), adapt_params=lambda name: name.startswith("out_proj"))
    assert learner.adapt_names == ["out_proj.weight", "out_proj.bias"]


def test_outer_gradient_clipping():
    model = tiny_ssm()
    learner = MetaMAML(model, inner_lr=0.1, grad_clip_norm=1e-3)
    learner.meta_update(sequence_tasks(2))
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert total <= 1e-3 * (1 + 1e-4)


def test_state_dict_resume_gives_the_same_weights():
    tasks = [sequence_tasks(2, seed=seed) for seed in range(3)]
    uninterrupted = MetaMAML(tiny_ssm(), outer_lr=0.01, learn_inner_lr=True)
    for batch in tasks:
        uninterrupted.meta_update(batch)
    first = MetaMAML(tiny_ssm(), outer_lr=0.01, learn_inner_lr=True)
    first.meta_update(tasks[0])
    state = first.state_dict()
    resumed = MetaMAML(tiny_ssm(seed=5), outer_lr=0.01, learn_inner_lr=True)
    resumed.load_state_dict(state)
    for batch in tasks[1:]:
        resumed.meta_update(batch)
    for (name, value), expected in zip(resumed.params().items(), uninterrupted.params().values(), strict=True):
        torch.testing.assert_close(value, expected, atol=0, rtol=0, msg=name)


def test_stateless_functional_forward_returns_output_only():
    model = tiny_mlp()
    learner = MetaMAML(model)
    x = torch.randn(4, 3)
    torch.testing.assert_close(learner.functional_forward(x, None), model(x))


def test_bad_input_raises_value_error():
    learner = MetaMAML(tiny_ssm())
    with pytest.raises(ValueError, match="empty task list"):
        learner.meta_update([])
    good = sequence_tasks(1)[0]
    with pytest.raises(ValueError, match="feature dims"):
        learner.meta_update([good, (good[0], good[1], torch.randn(2, 6, 4), good[3])])
    with pytest.raises(ValueError, match="leading dims"):
        learner.adapt_task(torch.randn(2, 6, 3), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="needs a hidden_state"):
        learner.functional_forward(torch.randn(2, 3), None)
    with pytest.raises(ValueError, match="parts"):
        learner.meta_update([good[:3]])
    with pytest.raises(ValueError, match="batch"):
        learner.adapt_task(good[0], good[1], initial_hidden_state=torch.zeros(5, 4))
    with pytest.raises(ValueError, match="unknown parameters"):
        MetaMAML(tiny_ssm(), adapt_params=["nope"])
    with pytest.raises(ValueError, match="stateless"):
        MetaMAML(tiny_mlp()).functional_forward(torch.randn(2, 3), torch.zeros(2, 4))


def test_sinusoid_meta_training_makes_one_step_adaptation_work():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = sinusoid_mlp()
    learner = MetaMAML(model, inner_lr=0.01, outer_lr=0.001)
    for _ in range(600):
        learner.meta_update(sample_sinusoid_tasks(25, 10, 10, generator))
    new_tasks = sample_sinusoid_tasks(100, 10, 50, torch.Generator().manual_seed(123))
    before = after = 0.0
    for support_x, support_y, query_x, query_y in new_tasks:
        before += F.mse_loss(model(query_x), query_y).item()
        fast = learner.adapt_task(support_x, support_y, num_steps=1)
        after += F.mse_loss(learner.functional_forward(query_x, None, fast), query_y).item()
    assert after < 0.75 * before, (before / 100, after / 100)


def test_zero_inner_gradient_with_clipping_gives_a_finite_meta_gradient():
    model = tiny_mlp()
    meta = MetaMAML(model, inner_lr=0.1, inner_grad_clip=1.0)
    x = torch.randn(5, 3)
    with torch.no_grad():
        target = model(x)  # support loss exactly 0 at theta: an all-zero inner gradient
    loss = meta.meta_loss([(x, target, x, target + 1.0)])
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_meta_update_refuses_a_non_finite_meta_gradient():
    model = tiny_mlp()
    meta = MetaMAML(model, inner_lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(5, 3)
    bad = torch.full((5, 2), float("nan"))
    with pytest.warns(UserWarning, match="non-finite meta-gradient"):
        meta.meta_update([(x, bad, x, bad)])
    assert meta.skipped_updates == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_settings_and_targets_it_cannot_use_are_refused():
    for name, value in (("inner_lr", float("nan")), ("outer_lr", float("inf")), ("inner_lr", -0.1)):
        with pytest.raises(ValueError, match=f"^{name} must be a finite number > 0, got {value}"):
            MetaMAML(tiny_ssm(), **{name: value})
    learner = MetaMAML(tiny_ssm())
    support_x, support_y = sequence_tasks(1)[0][:2]
    with pytest.raises(ValueError, match="^num_steps must be an int >= 0, got -3"):
        learner.adapt_task(support_x, support_y, num_steps=-3)
    wider = torch.randn(*support_y.shape[:-1], support_y.shape[-1] + 1)
    with pytest.raises(ValueError, match=r"the model's output has shape .* and the targets .*: they must match"):
        learner.adapt_task(support_x, wider)
