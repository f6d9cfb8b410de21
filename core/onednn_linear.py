"""`F.linear` with its matrix products run by oneDNN, for float32 on CPU.

    y = x W^T + b          x (..., in), W (out, in), b (out) -> y (..., out)
    dx = dy W,  dW = dy^T x,  db = sum dy

PyTorch's CPU build ships two GEMM libraries: `F.linear` calls MKL, while nn.LSTM, convolutions and
oneDNN's linear op (`core.torch_internals.onednn_linear`, a private op) call oneDNN. On CPUs where MKL
falls back to a generic code path (AMD EPYC among them) oneDNN is about 2.5x faster on the SSM's
(B*T, 128) x (128, 128) products, with the same float32 result. `linear` uses it for those three products
where it applies and `F.linear` everywhere else. Its backward is differentiable (double backward runs
`F.linear`-equivalent ops), so `create_graph=True` stays correct; under torch.func transforms callers use
`F.linear` (`applies` says when).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx

from core.torch_internals import has_onednn_linear, onednn_linear, outside_torch_func_transforms


class OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b on oneDNN; the backward uses oneDNN too unless a graph of it is being recorded."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return onednn_linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: FunctionCtx, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_y2d, x2d = grad_y.reshape(-1, grad_y.shape[-1]), x.reshape(-1, x.shape[-1])  # (M, out), (M, in)
        grad_x = grad_weight = grad_bias = None
        if torch.is_grad_enabled():  # double backward: plain differentiable ops
            if ctx.needs_input_grad[0]:
                grad_x = grad_y @ weight
            if ctx.needs_input_grad[1]:
                grad_weight = grad_y2d.T @ x2d
        else:
            if ctx.needs_input_grad[0]:
                grad_x = onednn_linear(grad_y, weight.T.contiguous(), None)  # (..., in)
            if ctx.needs_input_grad[1]:
                grad_weight = onednn_linear(grad_y2d.T, x2d.T, None)  # (out, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y2d.sum(0)
        return grad_x, grad_weight, grad_bias


def applies(*tensors: torch.Tensor) -> bool:
    """Whether `OneDNNLinear` can run on these tensors: float32 CPU, oneDNN's op present, no torch.func transform."""
    return (
        has_onednn_linear()
        and outside_torch_func_transforms()
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`, through oneDNN where `applies`."""
    if applies(x, weight):
        return OneDNNLinear.apply(x, weight, bias)
    return F.linear(x, weight, bias)
