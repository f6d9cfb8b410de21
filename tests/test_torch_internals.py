"""core.torch_internals: every private torch API is present on this torch, and every public fallback computes the
same numbers (so a torch without them trains the same SSM, slower)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from core import torch_internals
from core.ssm import SSM


def test_every_private_torch_api_is_present_on_this_torch():
    missing = [name for name, present in torch_internals.AVAILABLE.items() if not present]
    assert not missing, (
        f"torch {torch.__version__} lacks {missing}: checked on torch {', '.join(torch_internals.CHECKED_ON)}; "
        "the public fallbacks in core/torch_internals.py run instead (same numbers, slower)"
    )


def _derivatives() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, generator=generator) * 12.0  # beyond softplus's threshold of 20 at the tails
    x[0] = 25.0
    grad = torch.randn(64, generator=generator)
    x_a = x.clone().requires_grad_()
    (softplus_grad,) = torch.autograd.grad(F.softplus(x_a), x_a, grad)
    x_b = x.clone().requires_grad_()
    (silu_grad,) = torch.autograd.grad(F.silu(x_b), x_b, grad)
    return {
        "x": x,
        "grad": grad,
        "softplus": softplus_grad,
        "silu": silu_grad,
        "private_softplus": torch_internals.softplus_backward(grad, x),
        "private_silu": torch_internals.silu_backward(grad, x),
    }


def test_the_backward_helpers_equal_autograd_with_and_without_the_private_ops(monkeypatch):
    for available in (True, False):
        monkeypatch.setitem(torch_internals.AVAILABLE, "torch.ops.aten.softplus_backward", available)
        monkeypatch.setitem(torch_internals.AVAILABLE, "torch.ops.aten.silu_backward", available)
        values = _derivatives()
        torch.testing.assert_close(values["private_softplus"], values["softplus"])
        torch.testing.assert_close(values["private_silu"], values["silu"])


def test_onednn_linear_falls_back_to_f_linear(monkeypatch):
    monkeypatch.setitem(torch_internals.AVAILABLE, "torch.ops.mkldnn._linear_pointwise", False)
    x, weight, bias = torch.randn(5, 3), torch.randn(4, 3), torch.randn(4)
    torch.testing.assert_close(torch_internals.onednn_linear(x, weight, bias), F.linear(x, weight, bias))


def test_the_transform_query_sees_vmap_and_answers_false_without_the_private_api(monkeypatch):
    assert torch_internals.outside_torch_func_transforms()
    seen = []
    vmap(lambda row: seen.append(torch_internals.outside_torch_func_transforms()) or row)(torch.ones(2, 3))
    assert seen == [False]
    monkeypatch.setitem(torch_internals.AVAILABLE, "torch._C._functorch.peek_interpreter_stack", False)
    assert not torch_internals.outside_torch_func_transforms()


def _sequence_loss_and_grads(model: SSM, x: torch.Tensor, reset: torch.Tensor) -> tuple[torch.Tensor, ...]:
    output, last = model(x, model.init_hidden(x.shape[0]), reset)
    loss = output.square().mean() + last.square().mean()
    return (loss.detach(), *torch.autograd.grad(loss, list(model.parameters())))


@pytest.mark.parametrize(
    "missing",
    [
        list(torch_internals.AVAILABLE),  # every private API: the reference (plain-op) scan
        ["torch.ops.aten.softplus_backward", "torch.ops.aten.silu_backward", "torch.ops.mkldnn._linear_pointwise"],
    ],
    ids=["all", "the fused scan with public derivatives"],
)
def test_the_ssm_trains_the_same_without_the_private_apis(monkeypatch, missing):
    torch.manual_seed(0)
    model = SSM(state_dim=8, input_dim=5, output_dim=3, hidden_dim=16)
    x = torch.randn(4, 20, 5)
    reset = torch.zeros(4, 20)
    reset[:, 7] = 1.0
    with_private = _sequence_loss_and_grads(model, x, reset)
    for name in missing:
        monkeypatch.setitem(torch_internals.AVAILABLE, name, False)
    public_only = _sequence_loss_and_grads(model, x, reset)
    for fast, reference in zip(with_private, public_only, strict=True):
        torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
