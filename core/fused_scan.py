"""The SSM's gate-and-scan core as one autograd Function with a hand-derived backward.

From the pre-activations to the readout's input, per step t (N = state_dim, B batch, T time):

    delta_t = max(softplus(rate_t) * exp(A_log), MIN_DELTA)    rate_t (N)   pre-activation of the rate
    a_t     = exp(-delta_t) * keep_t                           keep_t = 1 - reset_t, one per (b, t)
    c_t     = sqrt(1 - exp(-2 delta_t))                        LRU input normalisation
    h_t     = a_t * h_{t-1} + c_t * z_t                        z_t (N)      state input
    r_t     = (h_t + D * z_t) * silu(g_t)                      g_t (N)      gate pre-activation

Outputs: r (B, T, N) and h_T (B, N). Backward, given dr (B, T, N) and dh_T (B, N):

    dp_t    = dr_t * silu(g_t)                                 p_t = h_t + D * z_t
    dh_t    = dp_t + a_{t+1} * dh_{t+1},  with dh_T added at T  the adjoint recurrence: a reverse scan
    dz_t    = c_t * dh_t + D * dp_t,  dD = sum_bt dp_t * z_t,  dh_0 = a_1 * dh_1
    dg_t    = dr_t * p_t * silu'(g_t)
    d(-delta_t) = dh_t * (h_t - c_t z_t) - dh_t * z_t * (1 / c_t - c_t)   [a_t h_{t-1} = h_t - c_t z_t,
                                                                            exp(-2 delta) / c = 1 / c - c]
    drate_t = -d(-delta_t) * exp(A_log) * sigmoid(rate_t),  dA_log = sum_bt d(-delta_t) * (-delta_t)
                                                               (both 0 where the floor MIN_DELTA holds delta)

`GateScan` keeps four (B, T, N) tensors for the backward (states, -delta, a, c) and works in place on the
buffers it allocates, so each element-wise pass costs one sweep and few fresh allocations (on CPU a fresh
8 MB tensor costs as much as the pass itself, in page faults). When a graph of the backward is recorded
(`create_graph=True`, second-order MAML), the backward instead differentiates `reference_gate_scan`, the
same equations in plain differentiable ops, so higher derivatives equal the reference's. The Function is
not meant for torch.func transforms: `applies()` says when to use it, and the SSM falls back to its
reference path under a transform.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx

from core.scans import chunked_scan, chunked_scan_
from core.torch_internals import outside_torch_func_transforms, silu_backward, softplus_backward

# The rate's floor. As delta -> 0 the input normalisation c = sqrt(1 - exp(-2 delta)) -> 0 and its derivatives
# (1 / c and up) overflow: a trained rate pre-activation near -90 underflows softplus to 1e-41 and leaves every
# meta-gradient of the rate's parameters non-finite. At 1e-9 (a timescale of 10^9 steps) c is 4.5e-5.
MIN_DELTA = 1e-9


def decay_and_input(
    rate: torch.Tensor,
    z: torch.Tensor,
    A_log: torch.Tensor,  # noqa: N803 (the model's parameter name)
) -> tuple[torch.Tensor, torch.Tensor]:
    """rate, z (..., N), A_log (N) -> decay a = exp(-delta) and normalised input sqrt(1 - a^2) * z, each (..., N)."""
    neg_delta = (F.softplus(rate) * -torch.exp(A_log)).clamp(max=-MIN_DELTA)
    return torch.exp(neg_delta), torch.sqrt(-torch.expm1(2.0 * neg_delta)) * z


def readout_input(h: torch.Tensor, z: torch.Tensor, gate: torch.Tensor, D: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """State h, input z, gate (..., N), skip D (N) -> (h + D * z) * silu(gate), (..., N)."""
    return torch.addcmul(h, D, z) * F.silu(gate)


def reference_gate_scan(
    rate: torch.Tensor,
    z: torch.Tensor,
    gate: torch.Tensor,
    A_log: torch.Tensor,  # noqa: N803
    D: torch.Tensor,  # noqa: N803
    keep: torch.Tensor | None,
    h0: torch.Tensor,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`gate_scan` in plain ops, differentiated by autograd: the reference the Function is tested against."""
    a, b = decay_and_input(rate, z, A_log)
    if keep is not None:
        a = a * keep.unsqueeze(-1)
    states = chunked_scan(a, b, h0, chunk_size)  # (B, T, N)
    return readout_input(states, z, gate, D), states[:, -1]


class GateScan(torch.autograd.Function):
    """(rate, z, gate, A_log, D, keep, h0, chunk_size) -> (r, h_T, and saved intermediates)."""

    @staticmethod
    def forward(
        rate: torch.Tensor,
        z: torch.Tensor,
        gate: torch.Tensor,
        A_log: torch.Tensor,  # noqa: N803
        D: torch.Tensor,  # noqa: N803
        keep: torch.Tensor | None,
        h0: torch.Tensor,
        chunk_size: int | None,
    ) -> tuple[torch.Tensor, ...]:
        neg_delta = F.softplus(rate).mul_(-torch.exp(A_log)).clamp_max_(-MIN_DELTA)  # (B, T, N)
        a = torch.exp(neg_delta)  # (B, T, N)
        if keep is not None:
            a.mul_(keep.unsqueeze(-1))
        norm = torch.mul(neg_delta, 2.0).expm1_().neg_().sqrt_()  # (B, T, N): c = sqrt(1 - exp(-2 delta))
        states = chunked_scan_(a, norm * z, h0, chunk_size)  # (B, T, N)
        r = torch.addcmul(states, D, z).mul_(F.silu(gate))  # (B, T, N)
        return r, states[:, -1], states, neg_delta, a, norm

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple, output: tuple) -> None:
        rate, z, gate, A_log, D, keep, h0, chunk_size = inputs
        _, _, states, neg_delta, a, norm = output
        ctx.save_for_backward(rate, z, gate, A_log, D, keep, h0, states, neg_delta, a, norm)
        ctx.mark_non_differentiable(states, neg_delta, a, norm)
        ctx.set_materialize_grads(False)  # no zero (B, T, N) gradients for the intermediates
        ctx.chunk_size = chunk_size

    @staticmethod
    def backward(
        ctx: FunctionCtx, grad_r: torch.Tensor, grad_last: torch.Tensor, *_: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        if grad_r is None:
            grad_r = torch.zeros_like(ctx.saved_tensors[7])
        if grad_last is None:
            grad_last = torch.zeros_like(ctx.saved_tensors[6])
        if torch.is_grad_enabled():
            return _recorded_backward(ctx, grad_r, grad_last)
        rate, z, gate, A_log, D, keep, h0, states, neg_delta, a, norm = ctx.saved_tensors
        grad_h = F.silu(gate).mul_(grad_r)  # (B, T, N): dp, turned into dh by the scan below
        grad_D = (grad_h * z).sum((0, 1))  # (N)
        grad_z = grad_h * D  # (B, T, N): D * dp; c * dh is added below
        scratch = F.pad(a[:, 1:], (0, 0, 0, 1), value=1.0)  # (B, T, N): a_{t+1}; the 1 carries dh_T in
        chunked_scan_(scratch, grad_h, grad_last, ctx.chunk_size, reverse=True)
        grad_h0 = a[:, 0] * grad_h[:, 0]  # (B, N)
        grad_z.addcmul_(grad_h, norm)

        grad_neg_delta = torch.addcmul(states, norm, z, value=-1.0, out=scratch).mul_(grad_h)  # dh * a_t h_{t-1}
        grad_h.mul_(z)  # dh * z
        grad_neg_delta.addcdiv_(grad_h, norm, value=-1.0).addcmul_(grad_h, norm)  # - dh z (1 / c - c)
        grad_neg_delta.masked_fill_(neg_delta >= -MIN_DELTA, 0.0)  # held at the floor: no gradient to the rate
        grad_A_log = (grad_neg_delta * neg_delta).sum((0, 1))  # (N)
        grad_rate = softplus_backward(grad_neg_delta, rate).mul_(-torch.exp(A_log))

        p_grad = torch.addcmul(states, D, z, out=grad_neg_delta).mul_(grad_r)  # dr * p
        grad_gate = silu_backward(p_grad, gate)  # (B, T, N)
        return grad_rate, grad_z, grad_gate, grad_A_log, grad_D, None, grad_h0, None


def _recorded_backward(
    ctx: FunctionCtx, grad_r: torch.Tensor, grad_last: torch.Tensor
) -> tuple[torch.Tensor | None, ...]:
    """The backward as autograd of `reference_gate_scan`, recorded so that it can be differentiated again."""
    rate, z, gate, A_log, D, keep, h0, *_ = ctx.saved_tensors
    inputs = (rate, z, gate, A_log, D, keep, h0)
    wanted = [i for i, needed in enumerate(ctx.needs_input_grad[:7]) if needed and i != 5]  # keep: a mask
    r, last = reference_gate_scan(rate, z, gate, A_log, D, keep, h0, ctx.chunk_size)
    values = torch.autograd.grad((r, last), [inputs[i] for i in wanted], (grad_r, grad_last), create_graph=True)
    grads: list[torch.Tensor | None] = [None] * 8
    for i, value in zip(wanted, values, strict=True):
        grads[i] = value
    return tuple(grads)


def applies() -> bool:
    """Whether `gate_scan` may run here: not inside a torch.func transform (vmap, grad, jacrev, ...)."""
    return outside_torch_func_transforms()


def gate_scan(
    rate: torch.Tensor,
    z: torch.Tensor,
    gate: torch.Tensor,
    A_log: torch.Tensor,  # noqa: N803
    D: torch.Tensor,  # noqa: N803
    keep: torch.Tensor | None,
    h0: torch.Tensor,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """rate, z, gate (B, T, N), A_log, D (N), keep (B, T) or None, h0 (B, N) -> r (B, T, N), h_T (B, N)."""
    inputs = (rate, z, gate, A_log, D, h0)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        r, last, *_ = GateScan.apply(rate, z, gate, A_log, D, keep, h0, chunk_size)
        return r, last
    return _gate_scan_values(rate, z, gate, A_log, D, keep, h0, chunk_size)


def _gate_scan_values(
    rate: torch.Tensor,
    z: torch.Tensor,
    gate: torch.Tensor,
    A_log: torch.Tensor,  # noqa: N803
    D: torch.Tensor,  # noqa: N803
    keep: torch.Tensor | None,
    h0: torch.Tensor,
    chunk_size: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`gate_scan` when no gradient is needed: three (B, T, N) buffers, everything else in place."""
    neg_delta = F.softplus(rate).mul_(-torch.exp(A_log)).clamp_max_(-MIN_DELTA)  # (B, T, N)
    states = torch.mul(neg_delta, 2.0).expm1_().neg_().sqrt_().mul_(z)  # (B, T, N): b = c * z, scanned below
    a = neg_delta.exp_()
    if keep is not None:
        a.mul_(keep.unsqueeze(-1))
    chunked_scan_(a, states, h0, chunk_size)
    last = states[:, -1].clone()  # (B, N)
    return states.addcmul_(D, z).mul_(F.silu(gate)), last
