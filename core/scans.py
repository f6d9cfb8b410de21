"""Linear recurrences h_t = a_t * h_{t-1} + b_t over a (B, T, N) sequence, in pure PyTorch ops.

`chunked_scan` (about 2 * sqrt(T) small steps; the default on CPU, where each op's cost grows with its size)
and `doubling_scan` (log2(T) full-width steps; the default on CUDA, where each op costs a kernel launch).
Both are differentiable by autograd and tested against a float64 loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def chunked_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_size: int | None = None, reverse: bool = False
) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t.  a, b (B, T, N), h0 (B, N) -> states (B, T, N).

    `reverse=True` runs the recurrence backwards in time instead, h_t = a_t * h_{t+1} + b_t with h_T = h0
    (the adjoint recurrence of a backward pass).

    The sequence is cut into chunks of L steps. A loop over the L positions runs the recurrence in
    every chunk at once from a zero state, keeping the running product of decays; a loop over the
    chunks then passes the true entering state from chunk to chunk, and each state is corrected by
    (decay since chunk start) * (entering state). Both loops iterate about sqrt(T) times by default.
    """
    batch, steps, width = a.shape
    length = chunk_size or max(1, math.isqrt(steps - 1) + 1)  # ceil(sqrt(T))
    num_chunks = -(-steps // length)
    padding = num_chunks * length - steps
    if padding:  # identity steps past the end leave every real state unchanged, in either direction
        a = F.pad(a, (0, 0, 0, padding), value=1.0)
        b = F.pad(b, (0, 0, 0, padding))
    order = slice(None, None, -1) if reverse else slice(None)
    a_chunks = a.reshape(batch, num_chunks, length, width).unbind(2)[order]  # L of (B, C, N), in scan order
    b_chunks = b.reshape(batch, num_chunks, length, width).unbind(2)[order]

    local, decay = b_chunks[0], a_chunks[0]  # (B, C, N): state from zero, product of decays
    local_states, decays = [local], [decay]
    for a_l, b_l in zip(a_chunks[1:], b_chunks[1:], strict=True):
        local = torch.addcmul(b_l, a_l, local)
        decay = decay * a_l
        local_states.append(local)
        decays.append(decay)

    carry = h0  # (B, N): true state entering the current chunk
    entering = []
    for local_last, decay_last in zip(local.unbind(1)[order], decay.unbind(1)[order], strict=True):
        entering.append(carry)
        carry = torch.addcmul(local_last, decay_last, carry)
    states = torch.addcmul(
        torch.stack(local_states[order], 2), torch.stack(decays[order], 2), torch.stack(entering[order], 1).unsqueeze(2)
    )
    return states.reshape(batch, num_chunks * length, width)[:, :steps]


def doubling_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t by recursive doubling (Hillis & Steele 1986).

    a, b (B, T, N), h0 (B, N) -> states (B, T, N). Each round composes every step's affine map
    h -> a h + b with the one `offset` steps earlier, doubling the span it covers: log2(T) rounds of
    O(T) work, which suits devices where the number of kernels, not the work, sets the time.
    """
    steps = a.shape[1]
    first = torch.addcmul(b[:, :1], a[:, :1], h0.unsqueeze(1))  # fold the entering state into step 0
    b = torch.cat([first, b[:, 1:]], dim=1)
    offset = 1
    while offset < steps:
        a_earlier = F.pad(a[:, :-offset], (0, 0, offset, 0), value=1.0)  # identity before the start
        b_earlier = F.pad(b[:, :-offset], (0, 0, offset, 0))
        b = torch.addcmul(b, a, b_earlier)
        a = a * a_earlier
        offset *= 2
    return b


def chunked_scan_(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_size: int | None = None, reverse: bool = False
) -> torch.Tensor:
    """`chunked_scan` computed in place: the states overwrite b (B, T, N), which is returned. Not differentiable.

    For autograd Functions that own b: no (B, T, N) tensor is allocated. Steps past the last whole chunk
    run one at a time (fewer than L of them).
    """
    batch, steps, width = a.shape
    length = chunk_size or max(1, math.isqrt(steps - 1) + 1)
    num_chunks = steps // length
    whole = num_chunks * length  # steps in whole chunks, from the start of the sequence
    carry = h0
    if reverse:
        for t in range(steps - 1, whole - 1, -1):
            carry = b[:, t].addcmul_(a[:, t], carry)
    if num_chunks:
        a4 = a[:, :whole].view(batch, num_chunks, length, width)  # (B, C, L, N)
        b4 = b[:, :whole].view(batch, num_chunks, length, width)
        positions = range(length - 1, -1, -1) if reverse else range(length)
        first, *rest = positions
        decay = a4[:, :, first].clone()  # (B, C, N): product of decays since the chunk's start
        previous = first
        for position in rest:  # local states from a zero state, every chunk at once
            b4[:, :, position].addcmul_(a4[:, :, position], b4[:, :, previous])
            decay.mul_(a4[:, :, position])
            previous = position
        entering = torch.empty_like(decay)  # (B, C, N): true state entering each chunk
        for c in range(num_chunks - 1, -1, -1) if reverse else range(num_chunks):
            entering[:, c] = carry
            carry = torch.addcmul(b4[:, c, previous], decay[:, c], carry)
        decay.copy_(a4[:, :, first])
        b4[:, :, first].addcmul_(decay, entering)
        for position in rest:  # correct each local state by (decay since the chunk's start) * (entering state)
            decay.mul_(a4[:, :, position])
            b4[:, :, position].addcmul_(decay, entering)
    if not reverse:
        for t in range(whole, steps):
            carry = b[:, t].addcmul_(a[:, t], carry)
    return b
