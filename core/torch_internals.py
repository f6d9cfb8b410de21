"""Every private torch API the library calls, in one place, each beside its public fallback.

    private API                                   used by                          fallback
    torch._C._functorch.peek_interpreter_stack    fused scan, oneDNN linear        behave as inside a transform:
                                                                                   the plain-op reference paths
    torch.ops.mkldnn._linear_pointwise            oneDNN linear (core.onednn_linear) F.linear (MKL)
    torch.ops.aten.softplus_backward              the fused scan's backward        the same derivative in public ops
    torch.ops.aten.silu_backward                  the fused scan's backward        the same derivative in public ops

`AVAILABLE` says which of them this torch has; where one is missing the fallback runs (slower, the same
numbers to float32 round-off) and `tests/test_torch_internals.py`, which names the torch versions they were
checked on (`CHECKED_ON`), fails naming it, so a torch upgrade breaks one clear test instead of a run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CHECKED_ON = ("2.13.0",)


def _present(lookup: Callable[[], object]) -> bool:
    try:
        return lookup() is not None
    except (AttributeError, RuntimeError):  # a missing attribute, or an op this build did not register
        return False


AVAILABLE: dict[str, bool] = {
    "torch._C._functorch.peek_interpreter_stack": _present(lambda: torch._C._functorch.peek_interpreter_stack),
    "torch.ops.mkldnn._linear_pointwise": torch.backends.mkldnn.is_available()
    and _present(lambda: torch.ops.mkldnn._linear_pointwise),
    "torch.ops.aten.softplus_backward": _present(lambda: torch.ops.aten.softplus_backward),
    "torch.ops.aten.silu_backward": _present(lambda: torch.ops.aten.silu_backward),
}


def outside_torch_func_transforms() -> bool:
    """Whether no torch.func transform (vmap, grad, jacrev, ...) is running: custom autograd Functions and
    in-place kernels may run only then. Without the private query this answers False (plain ops everywhere)."""
    if not AVAILABLE["torch._C._functorch.peek_interpreter_stack"]:
        return False
    return torch._C._functorch.peek_interpreter_stack() is None


def has_onednn_linear() -> bool:
    return AVAILABLE["torch.ops.mkldnn._linear_pointwise"]


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (..., in) @ weight (out, in)^T + bias (out) -> (..., out), by oneDNN (`F.linear` without it)."""
    if not has_onednn_linear():
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def softplus_backward(grad: torch.Tensor, x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """grad * d softplus(x) / dx: grad * sigmoid(beta x), or grad where beta x > threshold (linear there)."""
    if AVAILABLE["torch.ops.aten.softplus_backward"]:
        return torch.ops.aten.softplus_backward(grad, x, beta, threshold)
    scaled = x * beta
    return torch.where(scaled > threshold, grad, grad * torch.sigmoid(scaled))


def silu_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad * d silu(x) / dx = grad * sigmoid(x) * (1 + x * (1 - sigmoid(x)))."""
    if AVAILABLE["torch.ops.aten.silu_backward"]:
        return torch.ops.aten.silu_backward(grad, x)
    sigmoid = torch.sigmoid(x)
    return grad * sigmoid * (1.0 + x * (1.0 - sigmoid))
