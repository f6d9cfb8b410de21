"""The SSM: seed example, step == sequence (resets included), gradients, torch.func, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from core import fused_scan, onednn_linear
from core.scans import chunked_scan_
from core.ssm import SSM, chunked_scan, doubling_scan


def make_model(seed: int = 0, **kwargs) -> SSM:
    torch.manual_seed(seed)
    options = {"state_dim": 16, "input_dim": 5, "output_dim": 3, "hidden_dim": 32}
    options.update(kwargs)
    return SSM(**options)


def step_loop(model, x, h0, reset=None):
    """Reference: step mode over a (B, T, D) sequence."""
    hidden, outputs = h0, []
    for t in range(x.shape[1]):
        y_t, hidden = model(x[:, t], hidden, None if reset is None else reset[:, t])
        outputs.append(y_t)
    return torch.stack(outputs, 1), hidden


def test_seed_readme_example():
    model = SSM(state_dim=128, input_dim=64, output_dim=32, device="cpu")
    batch_size = 4
    input_x = torch.randn(batch_size, 64)
    current_hidden = model.init_hidden(batch_size)
    output, next_hidden = model(input_x, current_hidden)
    assert output.shape == torch.Size([4, 32])
    assert next_hidden.shape == torch.Size([4, 128])


@pytest.mark.parametrize(
    "scan, eigenvalues",
    [("fused", "real"), ("chunked", "real"), ("doubling", "real"), ("chunked", "complex"), ("doubling", "complex")],
)
@pytest.mark.parametrize("steps", [1, 7, 37, 500])
def test_sequence_mode_equals_step_loop_with_resets(steps, scan, eigenvalues):
    model = make_model(scan=scan, eigenvalues=eigenvalues)
    generator = torch.Generator().manual_seed(steps)
    x = torch.randn(4, steps, 5, generator=generator)
    reset = torch.rand(4, steps, generator=generator) < 0.1
    h0 = torch.randn(4, 16, generator=generator)
    y_seq, h_seq = model(x, h0, reset)
    y_loop, h_loop = step_loop(model, x, h0, reset)
    assert y_seq.shape == (4, steps, 3) and h_seq.shape == (4, 16)
    torch.testing.assert_close(y_seq, y_loop, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_seq, h_loop, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_size": 1},
        {"chunk_size": 3},
        {"chunk_size": 64},
        {"scan": "doubling"},
        {"scan": "fused", "chunk_size": 3},
    ],
)
def test_scan_choice_does_not_change_the_result(options):
    model = make_model(**options)
    x, h0 = torch.randn(2, 50, 5), torch.randn(2, 16)
    torch.testing.assert_close(model(x, h0)[0], step_loop(model, x, h0)[0], atol=1e-5, rtol=0)


def test_both_scans_match_the_naive_recurrence_in_float64():
    a = torch.rand(3, 101, 8, dtype=torch.float64)
    b = torch.randn(3, 101, 8, dtype=torch.float64)
    h0 = torch.randn(3, 8, dtype=torch.float64)
    h = h0
    expected = []
    for t in range(101):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    torch.testing.assert_close(chunked_scan(a, b, h0), torch.stack(expected, 1), atol=1e-12, rtol=0)
    torch.testing.assert_close(doubling_scan(a, b, h0), torch.stack(expected, 1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunk_size", [None, 1, 4, 64])
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_scans_in_place_and_in_reverse_match_the_naive_recurrence_in_float64(reverse, chunk_size):
    a = torch.rand(3, 101, 8, dtype=torch.float64)
    b = torch.randn(3, 101, 8, dtype=torch.float64)
    h0 = torch.randn(3, 8, dtype=torch.float64)
    h, expected = h0, [None] * 101
    for t in reversed(range(101)) if reverse else range(101):
        h = a[:, t] * h + b[:, t]
        expected[t] = h
    expected = torch.stack(expected, 1)
    torch.testing.assert_close(chunked_scan(a, b, h0, chunk_size, reverse), expected, atol=1e-12, rtol=0)
    a_before, b_in_place = a.clone(), b.clone()
    assert chunked_scan_(a, b_in_place, h0, chunk_size, reverse) is b_in_place
    torch.testing.assert_close(b_in_place, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(a, a_before, atol=0, rtol=0)


@pytest.mark.parametrize("scan", ["fused", "chunked", "doubling"])
def test_reset_starts_a_fresh_sequence(scan):
    model = make_model(scan=scan)
    x = torch.randn(2, 30, 5)
    reset = torch.zeros(2, 30, dtype=torch.bool)
    reset[:, 12] = True
    y_reset, h_reset = model(x, torch.randn(2, 16), reset)
    y_fresh, h_fresh = model(x[:, 12:], model.init_hidden(2))
    torch.testing.assert_close(y_reset[:, 12:], y_fresh, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_reset, h_fresh, atol=1e-5, rtol=0)


def test_reset_accepts_float_masks_and_changes_the_output():
    model = make_model()
    x, h0 = torch.randn(2, 10, 5), torch.randn(2, 16)
    reset = torch.zeros(2, 10)
    reset[0, 4] = 1.0
    y_masked, _ = model(x, h0, reset)
    y_plain, _ = model(x, h0)
    torch.testing.assert_close(y_masked[1], y_plain[1])
    assert not torch.allclose(y_masked[0, 4:], y_plain[0, 4:])
    torch.testing.assert_close(y_masked, model(x, h0, reset.bool())[0])


def test_state_stays_bounded_on_long_constant_input():
    model = make_model()
    x = torch.ones(1, 5000, 5) * 3.0
    _, h = model(x, model.init_hidden(1))
    assert torch.isfinite(h).all()
    assert h.abs().max() < 1e3


@pytest.mark.parametrize("scan", ["fused", "chunked", "doubling"])
def test_gradients_reach_parameters_input_and_state_and_match_step_loop(scan):
    model = make_model(scan=scan)
    x = torch.randn(3, 40, 5, requires_grad=True)
    h0 = torch.randn(3, 16, requires_grad=True)
    reset = torch.rand(3, 40) < 0.1
    weights = torch.randn(3, 40, 3)

    def grads(run):
        y, h = run(model, x, h0, reset)
        loss = (y * weights).sum() + h.square().sum()
        names = [name for name, _ in model.named_parameters()]
        values = torch.autograd.grad(loss, [*model.parameters(), x, h0])
        return dict(zip([*names, "x", "h0"], values, strict=True))

    sequence = grads(lambda m, *args: m(*args))
    loop = grads(step_loop)
    for name, grad in sequence.items():
        assert grad.abs().sum() > 0, f"no gradient reaches {name}"
        torch.testing.assert_close(grad, loop[name], atol=1e-4, rtol=1e-4, msg=f"gradient of {name}")


@pytest.mark.parametrize(
    "scan, eigenvalues", [("fused", "real"), ("chunked", "real"), ("doubling", "real"), ("auto", "complex")]
)
def test_vmap_over_stacked_parameters_equals_loop_over_models(scan, eigenvalues):
    models = [make_model(seed, scan=scan, eigenvalues=eigenvalues) for seed in range(3)]
    params, buffers = stack_module_state(models)
    base = make_model(scan=scan, eigenvalues=eigenvalues).to("meta")
    x, h0 = torch.randn(4, 20, 5), torch.randn(4, 16)

    def run(p, b):
        return functional_call(base, (p, b), (x, h0))

    y_batched, h_batched = vmap(run)(params, buffers)
    for index, model in enumerate(models):
        y, h = model(x, h0)
        torch.testing.assert_close(y_batched[index], y, atol=1e-5, rtol=0)
        torch.testing.assert_close(h_batched[index], h, atol=1e-5, rtol=0)


def complex_reference(model: SSM, x: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
    """The complex state by a loop in torch's complex numbers: h_t = a_t (1 - reset_t) exp(i theta) h_{t-1} + b_t."""
    _, _, a, b = model._gates(x)  # a (B, T, N) holds each pair's decay twice; b (B, T, N): real, then imaginary
    pairs = model.state_dim // 2
    turn = torch.exp(1j * model.theta.detach().to(torch.float64))  # (N / 2)
    h = torch.complex(*h0.to(torch.float64).chunk(2, dim=-1))  # (B, N / 2)
    for t in range(x.shape[1]):
        keep = (1.0 - reset[:, t].to(torch.float64)).unsqueeze(-1)
        h = a[:, t, :pairs].detach().double() * keep * turn * h + torch.complex(*b[:, t].detach().double().chunk(2, -1))
    return torch.cat([h.real, h.imag], dim=-1)


@pytest.mark.parametrize("scan", ["chunked", "doubling"])
def test_complex_eigenvalues_compute_the_recurrence_of_complex_numbers(scan):
    model = make_model(scan=scan, eigenvalues="complex").double()
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 700, 5, generator=generator, dtype=torch.float64)
    reset = torch.rand(3, 700, generator=generator) < 0.01
    h0 = torch.randn(3, 16, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(model(x, h0, reset)[1], complex_reference(model, x, h0, reset), atol=1e-10, rtol=0)
    assert model.A_log.shape == model.theta.shape == (8,)  # one decay and one angle per complex pair


def test_complex_eigenvalues_recall_the_input_of_k_steps_ago_where_real_decays_cannot():
    """A supervised lag task (RepeatPrevious's memory, without the RL): predict which of 4 symbols came 4 steps back.
    The same width, optimiser and steps; only the eigenvalues differ."""
    torch.set_num_threads(1)
    accuracy = {}
    for eigenvalues in ("real", "complex"):
        torch.manual_seed(0)
        model = SSM(16, 4, 4, hidden_dim=16, eigenvalues=eigenvalues)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            symbols = torch.randint(0, 4, (32, 24))  # (B, T)
            logits, _ = model(torch.nn.functional.one_hot(symbols, 4).float())
            loss = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 4), symbols[:, :-4].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        accuracy[eigenvalues] = (logits[:, 4:].argmax(-1) == symbols[:, :-4]).float().mean().item()
    assert accuracy["complex"] > 0.95 and accuracy["real"] < 0.8, accuracy


@pytest.mark.parametrize("scan", ["fused", "chunked", "doubling"])
def test_a_rate_that_underflows_is_held_at_the_floor_and_first_and_second_derivatives_stay_finite(scan):
    model = make_model(scan=scan)
    with torch.no_grad():  # softplus(-100) underflows: delta ~ 1e-44 would make 1 / c and its derivatives overflow
        model.dt_proj.bias[:4] = -100.0
    x, h0 = torch.randn(2, 30, 5), torch.randn(2, 16)
    y, h = model(x, h0)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(y.square().mean() + h.square().mean(), list(params.values()), create_graph=True)
    assert all(torch.isfinite(grad).all() for grad in grads)
    bias_grad = grads[list(params).index("dt_proj.bias")]
    assert torch.all(bias_grad[:4] == 0) and torch.all(bias_grad[4:] != 0)  # held at the floor: no gradient there
    second = torch.autograd.grad(sum(grad.square().sum() for grad in grads), list(params.values()))
    assert all(torch.isfinite(grad).all() for grad in second)
    torch.testing.assert_close(step_loop(model, x, h0)[0], y, atol=1e-5, rtol=0)


def test_the_fused_scan_equals_the_reference_where_the_rate_is_held_at_the_floor():
    rate, z, gate, A_log, D, keep, h0 = gate_scan_inputs(torch.float32, steps=50, seed=2)  # noqa: N806
    with torch.no_grad():
        rate[:, ::3] = -100.0
    fused = fused_scan.gate_scan(rate, z, gate, A_log, D, keep, h0, 7)
    reference = fused_scan.reference_gate_scan(rate, z, gate, A_log, D, keep, h0, 7)
    inputs = (rate, z, gate, A_log, D, h0)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(fused[0])
    got = torch.autograd.grad((fused[0] * weights).sum() + fused[1].sum(), inputs)
    expected = torch.autograd.grad((reference[0] * weights).sum() + reference[1].sum(), inputs)
    for one, other in zip(got, expected, strict=True):
        assert torch.isfinite(one).all()
        torch.testing.assert_close(one, other, atol=1e-4, rtol=1e-4)


def gate_scan_inputs(dtype=torch.float64, steps=9, seed=0):
    """rate, z, gate (2, steps, 3), A_log, D (3), keep (2, steps) with resets, h0 (2, 3); all but keep need grad."""
    generator = torch.Generator().manual_seed(seed)
    rate, z, gate = (torch.randn(2, steps, 3, generator=generator, dtype=dtype) for _ in range(3))
    A_log = torch.linspace(-3.0, 0.5, 3, dtype=dtype)  # noqa: N806
    D, h0 = torch.randn(3, generator=generator, dtype=dtype), torch.randn(2, 3, generator=generator, dtype=dtype)
    keep = (torch.rand(2, steps, generator=generator) > 0.2).to(dtype)
    inputs = [t.requires_grad_() for t in (rate, z, gate, A_log, D)]
    return (*inputs, keep, h0.requires_grad_())


def test_fused_gate_scan_passes_gradcheck_and_gradgradcheck_in_float64():
    *inputs, keep, h0 = gate_scan_inputs()

    def run(rate, z, gate, A_log, D, h0):  # noqa: N803
        return fused_scan.gate_scan(rate, z, gate, A_log, D, keep, h0, 4)

    assert torch.autograd.gradcheck(run, (*inputs, h0))
    assert torch.autograd.gradgradcheck(run, (*inputs, h0))


def test_fused_gate_scan_values_and_gradients_equal_the_reference_in_float32():
    *inputs, keep, h0 = gate_scan_inputs(torch.float32, steps=200, seed=1)
    weights = torch.randn(2, 200, 3)

    def values_and_grads(run):
        r, last = run(*inputs, keep, h0, None)
        loss = (r * weights).sum() + last.square().sum()
        return (r, last, *torch.autograd.grad(loss, [*inputs, h0]))

    fused = values_and_grads(fused_scan.gate_scan)
    reference = values_and_grads(fused_scan.reference_gate_scan)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        r, last = fused_scan.gate_scan(*inputs, keep, h0)
    torch.testing.assert_close(r, fused[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(last, fused[1], atol=1e-6, rtol=0)


def test_fused_gate_scan_gradient_of_the_last_state_alone():
    *inputs, keep, h0 = gate_scan_inputs()
    reaching = [inputs[0], inputs[1], inputs[3], h0]  # rate, z, A_log, h0: the gate and D act on r only
    fused = torch.autograd.grad(fused_scan.gate_scan(*inputs, keep, h0)[1].sum(), reaching)
    reference = torch.autograd.grad(fused_scan.reference_gate_scan(*inputs, keep, h0)[1].sum(), reaching)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected)


def test_fused_model_gradients_equal_the_unfused_reference():
    fused, reference = make_model(scan="fused"), make_model(scan="chunked")
    x, h0 = torch.randn(3, 60, 5, requires_grad=True), torch.randn(3, 16, requires_grad=True)
    reset, weights = torch.rand(3, 60) < 0.1, torch.randn(3, 60, 3)

    def grads(model):
        y, h = model(x, h0, reset)
        return torch.autograd.grad((y * weights).sum() + h.square().sum(), [*model.parameters(), x, h0])

    for got, expected in zip(grads(fused), grads(reference), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_fused_path_runs_outside_torch_func_and_the_reference_inside():
    model, x = make_model(scan="fused"), torch.randn(2, 6, 5)
    assert model._sequence_scan(x) == "fused"
    assert make_model()._sequence_scan(x) == "fused"  # "auto" on CPU
    graph = _graph_nodes(model(x, model.init_hidden(2))[0].grad_fn)
    assert any(type(node).__name__ == "GateScanBackward" for node in graph)
    inside = []
    vmap(lambda x_i: inside.append(model._sequence_scan(x_i)) or x_i)(x)
    torch.func.grad(lambda x_i: inside.append(model._sequence_scan(x_i)) or x_i.sum())(x)
    assert inside == ["chunked", "chunked"]


def _graph_nodes(node, seen=None):
    seen = set() if seen is None else seen
    if node is not None and node not in seen:
        seen.add(node)
        for child, _ in node.next_functions:
            _graph_nodes(child, seen)
    return seen


def test_second_order_gradients_through_the_fused_model_equal_the_reference():
    x, y_target, h0 = torch.randn(2, 12, 5), torch.randn(2, 12, 3), torch.randn(2, 16)
    reset = torch.rand(2, 12) < 0.2

    def meta_gradient(scan, use_torch_func):
        model = make_model(scan=scan)
        params = dict(model.named_parameters())

        def inner_loss(p):
            return (functional_call(model, p, (x, h0, reset))[0] - y_target).square().mean()

        if use_torch_func:

            def outer_loss(p):
                fast = {
                    k: v - 0.1 * g for (k, v), g in zip(p.items(), torch.func.grad(inner_loss)(p).values(), strict=True)
                }
                return inner_loss(fast)

            return torch.func.grad(outer_loss)(params)
        inner = torch.autograd.grad(inner_loss(params), list(params.values()), create_graph=True)
        fast = {k: v - 0.1 * g for (k, v), g in zip(params.items(), inner, strict=True)}
        return dict(zip(params, torch.autograd.grad(inner_loss(fast), list(params.values())), strict=True))

    reference = meta_gradient("chunked", use_torch_func=False)
    for use_torch_func in (False, True):
        fused = meta_gradient("fused", use_torch_func)
        for name, value in reference.items():
            torch.testing.assert_close(fused[name], value, atol=1e-5, rtol=1e-4, msg=f"meta-gradient of {name}")


def test_onednn_linear_equals_f_linear_with_first_and_second_derivatives():
    x, weight, bias = torch.randn(4, 7, 6, requires_grad=True), torch.randn(5, 6, requires_grad=True), torch.randn(5)
    bias.requires_grad_()

    def derivatives(linear):
        y = linear(x, weight, bias)
        first = torch.autograd.grad(y.sin().sum(), (x, weight, bias), create_graph=True)
        second = torch.autograd.grad(sum(g.square().sum() for g in first), (x, weight))
        return (y, *first, *second)

    for got, expected in zip(derivatives(onednn_linear.linear), derivatives(torch.nn.functional.linear), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_vmap_over_inputs_in_step_mode():
    model = make_model()
    x, h0 = torch.randn(6, 4, 5), torch.randn(6, 4, 16)
    y, h = vmap(model)(x, h0)
    for index in range(6):
        y_i, h_i = model(x[index], h0[index])
        torch.testing.assert_close(y[index], y_i)
        torch.testing.assert_close(h[index], h_i)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_without_autograd_equals_the_differentiable_step_exactly(dtype):
    """Planning steps run the in-place path (no autograd); it performs the same operations in the same order."""
    model = make_model().to(dtype)
    x, h0 = torch.randn(64, 5, dtype=dtype), torch.randn(64, 16, dtype=dtype)
    reset = (torch.rand(64) < 0.3).to(dtype)
    for flags in (None, reset):
        y, h = model(x, h0, flags)
        with torch.no_grad():
            y_values, h_values = model(x, h0, flags)
        assert torch.equal(y_values, y.detach()) and torch.equal(h_values, h.detach())
    params = {name: value.detach().expand(3, *value.shape).clone() for name, value in model.named_parameters()}
    batched = vmap(lambda p, xe, he: functional_call(model, p, (xe, he)))
    episodes_x, episodes_h = x[:60].reshape(3, 20, 5), h0[:60].reshape(3, 20, 16)
    y, h = batched(params, episodes_x, episodes_h)
    with torch.no_grad():  # per-episode weights, as the planner steps them
        y_values, h_values = batched(params, episodes_x, episodes_h)
    assert torch.equal(y_values, y) and torch.equal(h_values, h)


def test_forward_writes_nothing_to_the_module():
    model = make_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    attributes = set(vars(model))
    model(torch.randn(2, 9, 5), model.init_hidden(2))
    assert set(vars(model)) == attributes
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], atol=0, rtol=0)


def test_save_load_round_trip(tmp_path):
    model = make_model(chunk_size=4)
    path = tmp_path / "ssm.pt"
    model.save(path)
    loaded = SSM.load(path)
    assert loaded.config == model.config
    x, h0 = torch.randn(2, 11, 5), torch.randn(2, 16)
    torch.testing.assert_close(loaded(x, h0)[0], model(x, h0)[0], atol=0, rtol=0)


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ssm.pt"
    make_model(seed=1).save(path)
    make_model(seed=2).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssm.pt"]
    torch.testing.assert_close(SSM.load(path).A_log, make_model(seed=2).A_log)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        SSM.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt"):
        SSM.load(corrupt)
    wrong = tmp_path / "wrong.pt"
    torch.save({"weights": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match="config"):
        SSM.load(wrong)


def test_init_hidden_and_parameters_follow_the_device():
    model = make_model().to(torch.float64)
    assert model.init_hidden(3).dtype == torch.float64
    model = make_model().to("meta")
    assert model.init_hidden(3).device.type == "meta"
    assert model.init_hidden(3).shape == (3, 16)
    if torch.cuda.is_available():
        cuda_model = make_model(device="cuda")
        assert cuda_model.init_hidden(2).device.type == "cuda"


def test_float64_model_computes_in_float64():
    model = make_model().double()
    y, h = model(torch.randn(2, 8, 5, dtype=torch.float64), model.init_hidden(2))
    assert y.dtype == torch.float64 and h.dtype == torch.float64


@pytest.mark.parametrize(
    ("x_shape", "hidden_shape", "reset_shape", "message"),
    [
        ((4, 6), (4, 16), None, r"x of shape \(B, 5\).*got \(4, 6\)"),
        ((4, 3, 2, 5), (4, 16), None, r"got \(4, 3, 2, 5\)"),
        ((5,), (4, 16), None, r"got \(5,\)"),
        ((4, 5), (4, 15), None, r"hidden_state of shape \(4, 16\), got \(4, 15\)"),
        ((4, 7, 5), (3, 16), None, r"hidden_state of shape \(4, 16\), got \(3, 16\)"),
        ((4, 7, 5), (4, 16), (4, 6), r"reset of shape \(4, 7\).*got \(4, 6\)"),
        ((4, 0, 5), (4, 16), None, r"empty sequence"),
    ],
)
def test_bad_shapes_raise_value_error(x_shape, hidden_shape, reset_shape, message):
    model = make_model()
    reset = None if reset_shape is None else torch.zeros(reset_shape)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(x_shape), torch.zeros(hidden_shape), reset)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="state_dim"):
        SSM(state_dim=0, input_dim=3, output_dim=2)
    with pytest.raises(ValueError, match="chunk_size"):
        SSM(state_dim=4, input_dim=3, output_dim=2, chunk_size=0)
    with pytest.raises(ValueError, match="scan must be one of"):
        SSM(state_dim=4, input_dim=3, output_dim=2, scan="parallel")
    with pytest.raises(ValueError, match="eigenvalues must be one of"):
        SSM(state_dim=4, input_dim=3, output_dim=2, eigenvalues="imaginary")
    with pytest.raises(ValueError, match=r"state_dim must be even \(got 5\)"):
        SSM(state_dim=5, input_dim=3, output_dim=2, eigenvalues="complex")
    with pytest.raises(ValueError, match="scan not 'fused'"):
        SSM(state_dim=4, input_dim=3, output_dim=2, eigenvalues="complex", scan="fused")


def test_inputs_of_another_type_or_dtype_are_named():
    model = make_model()  # float32
    with pytest.raises(TypeError, match="x as a torch.Tensor, got ndarray"):
        model(np.zeros((4, 5), dtype=np.float32), model.init_hidden(4))
    for dtype in (torch.float64, torch.float16, torch.int64):
        with pytest.raises(ValueError, match=rf"x of dtype torch.float32 \(its parameters' dtype\), got {dtype}"):
            model(torch.zeros(4, 5, dtype=dtype), model.init_hidden(4))
    with pytest.raises(ValueError, match="hidden_state of dtype torch.float32, got torch.float64"):
        model(torch.zeros(4, 5), model.init_hidden(4).double())


def test_a_single_sequence_given_without_its_batch_dimension_is_explained():
    model = make_model()
    with pytest.raises(ValueError, match=r"x \(20, 5\) is one step of 20 sequences; a single sequence .* x\[None\]"):
        model(torch.randn(20, 5), model.init_hidden(1))


def test_reset_flags_are_bools_or_zeros_and_ones():
    model = make_model()
    with pytest.raises(ValueError, match="reset as bools or 0/1 flags"):
        model(torch.randn(2, 4, 5), model.init_hidden(2), torch.full((2, 4), 0.5))
    flags = torch.tensor([[0.0, 1.0, 0.0, 0.0]] * 2)
    torch.testing.assert_close(
        model(torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0)), model.init_hidden(2), flags)[0],
        model(torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(0)), model.init_hidden(2), flags.bool())[0],
    )
