"""A selective diagonal state space model with a step mode and an equivalent sequence mode.

One layer, per time step t (N = state_dim, H = hidden_dim):

    u_t             = silu(W_in x_t)                                (H)
    z_t, g_t        = W_z u_t, W_g u_t                              (N), (N)  state input, gate
    delta_t         = softplus(W_dt W_r u_t + dt_bias) * exp(A_log) (N)  input-dependent rate, at least MIN_DELTA
    a_t             = exp(-delta_t)                                 (N)  decay in (0, 1)
    b_t             = sqrt(1 - a_t^2) * z_t                         (N)  LRU input normalisation
    h_t             = a_t * (1 - reset_t) * h_{t-1} + b_t           (N)  diagonal recurrence
    y_t             = W_out((h_t + D * z_t) * silu(g_t))            (output_dim)  gated readout + skip

With `eigenvalues="complex"` the state's N entries are N / 2 complex numbers (real parts, then imaginary
parts; S5, LRU: Smith et al. 2023, Orvieto et al. 2023): each pair shares one decay and turns by its own learned
angle theta each step,

    h_t             = a_t * (1 - reset_t) * exp(i theta) * h_{t-1} + b_t     (N / 2 complex)

so a state can hold what it saw k steps ago at a phase of its own (real decays only blur the past together:
recalling the input of exactly k steps back is what a single real layer cannot learn). Sequence mode turns the
inputs back by theta * t, runs the same real scan on both parts, and turns the states forward again.

The rate goes through a rank-R bottleneck (R = ceil(H / 16), as in Mamba), which keeps the
per-step cost below an LSTM's of the same width.

Timescales 1 / exp(A_log) start log-uniform between `timescale_range` steps (1 to 10^4 by default);
`softplus(dt_t)` then speeds each channel up or slows it down per input (the Mamba/LRU family:
Gu & Dao 2023, Orvieto et al. 2023). The sqrt(1 - a^2) factor keeps the state's variance bounded for
any decay. The recurrence runs in float32 (or wider, when the input is wider).

Step mode and sequence mode compute the same equations; sequence mode replaces the loop over t by a scan.
`scan` picks how:
- "fused" (the default on CPU): the projections, then `core.fused_scan.GateScan`, one autograd Function from
  the pre-activations of rate, z and gate to the gated readout, with a hand-derived backward; on float32 CPU
  tensors the projections' matrix products run on oneDNN (`core.onednn_linear`).
- "chunked": the reference, autograd over the step mode's `_gates` and `_readout` and `chunked_scan`
  (about 2 * sqrt(T) small steps).
- "doubling" (the default on CUDA, where each op costs a kernel launch): the same with `doubling_scan`
  (log2(T) full-width steps).
All three work under torch.func (functional_call, vmap, grad of grad).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from core import fused_scan, onednn_linear
from core.checkpoint import atomic_save, load_checkpoint
from core.recurrence import check_model_inputs
from core.scans import chunked_scan, doubling_scan


class SSM(nn.Module):
    """Stateful selective SSM: `forward(x, h, reset) -> (y, h_next)` on (B, D) steps or (B, T, D) sequences."""

    def __init__(
        self,
        state_dim: int,
        input_dim: int,
        output_dim: int,
        hidden_dim: int = 128,
        device: str | torch.device | None = None,
        *,
        chunk_size: int | None = None,
        scan: str = "auto",
        timescale_range: tuple[float, float] = (1.0, 1e4),
        eigenvalues: str = "real",
    ) -> None:
        super().__init__()
        for name, value in (
            ("state_dim", state_dim),
            ("input_dim", input_dim),
            ("output_dim", output_dim),
            ("hidden_dim", hidden_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
        if eigenvalues not in EIGENVALUES:
            raise ValueError(f"eigenvalues must be one of {EIGENVALUES}, got {eigenvalues!r}")
        if eigenvalues == "complex" and (state_dim % 2 or scan == "fused"):
            raise ValueError(
                f"complex eigenvalues pair the state's entries and run on the chunked or doubling scan: state_dim "
                f"must be even (got {state_dim}) and scan not 'fused'"
            )
        self.state_dim = state_dim
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.chunk_size = chunk_size
        self.scan = scan
        self.timescale_range = (float(timescale_range[0]), float(timescale_range[1]))
        self.eigenvalues = eigenvalues
        self.rotating = eigenvalues == "complex"
        decays = state_dim // 2 if self.rotating else state_dim  # one per complex pair, else one per entry

        self.dt_rank = -(-hidden_dim // 16)
        self.in_proj = nn.Linear(input_dim, hidden_dim)
        self.rate_proj = nn.Linear(hidden_dim, self.dt_rank, bias=False)  # rank-R bottleneck of the rate
        self.dt_proj = nn.Linear(self.dt_rank, decays)
        self.z_proj = nn.Linear(hidden_dim, state_dim)
        self.gate_proj = nn.Linear(hidden_dim, state_dim)
        self.A_log = nn.Parameter(torch.empty(decays))
        if self.rotating:  # the angle each complex pair turns per step, uniform in [0, pi) at initialisation
            self.theta = nn.Parameter(torch.empty(decays).uniform_(0.0, math.pi))
        self.D = nn.Parameter(torch.ones(state_dim))
        self.out_proj = nn.Linear(state_dim, output_dim)
        self._init_timescales()
        if device is not None:
            self.to(device)

    def _init_timescales(self) -> None:
        low, high = self.timescale_range
        timescales = torch.exp(torch.empty(self.A_log.shape).uniform_(math.log(low), math.log(high)))
        with torch.no_grad():
            self.A_log.copy_(-torch.log(timescales))
            # softplus(dt bias) = 1 at initialisation, so the rate starts at exactly 1 / timescale.
            self.dt_proj.bias.fill_(math.log(math.e - 1.0))

    @property
    def config(self) -> dict:
        """Constructor arguments, enough to rebuild the model from a state dict."""
        return {
            "state_dim": self.state_dim,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "hidden_dim": self.hidden_dim,
            "chunk_size": self.chunk_size,
            "scan": self.scan,
            "timescale_range": list(self.timescale_range),
            "eigenvalues": self.eigenvalues,
        }

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """Zero state (batch_size, state_dim) on the model's device."""
        return torch.zeros(batch_size, self.state_dim, device=self.A_log.device, dtype=self.A_log.dtype)

    def forward(
        self, x: torch.Tensor, hidden_state: torch.Tensor | None = None, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step mode: x (B, input_dim), hidden_state (B, state_dim), reset (B,) -> y (B, output_dim), h (B, state_dim).

        Sequence mode: x (B, T, input_dim), reset (B, T) -> y (B, T, output_dim), h after the last step.
        `reset[..., t] = 1` zeroes the state before x_t is consumed. `hidden_state=None` starts from zeros.
        """
        check_model_inputs("SSM", x, hidden_state, reset, self.input_dim, self.state_dim, self.in_proj.weight)
        if hidden_state is None:
            hidden_state = torch.zeros(x.shape[0], self.state_dim, device=x.device, dtype=x.dtype)
        if x.dim() == 3 and self._sequence_scan(x) == "fused":
            return self._fused_sequence(x, hidden_state, reset)
        if x.dim() == 2 and not torch.is_grad_enabled():
            return self._step_values(x, hidden_state, reset)
        z, gate, a, b = self._gates(x)
        if reset is not None:
            a = a * (1.0 - reset.to(a.dtype)).unsqueeze(-1)
        h0 = hidden_state.to(a.dtype)
        if x.dim() == 2:
            next_hidden = torch.addcmul(b, a, self._turn(h0, 1.0))
            return self._readout(next_hidden, z, gate), next_hidden
        if self.rotating:  # g_t = exp(-i theta t) h_t follows the real recurrence g_t = a_t g_{t-1} + turned b_t
            steps = torch.arange(x.shape[1], device=x.device, dtype=torch.float64).unsqueeze(-1)  # (T, 1)
            b, h0 = self._turn(b, -steps), self._turn(h0, 1.0)
        if self._sequence_scan(x) == "doubling":
            states = doubling_scan(a, b, h0)  # (B, T, N)
        else:
            states = chunked_scan(a, b, h0, self.chunk_size)
        if self.rotating:
            states = self._turn(states, steps)
        return self._readout(states, z, gate), states[:, -1]

    def _turn(self, h: torch.Tensor, steps: torch.Tensor | float) -> torch.Tensor:
        """Complex pairs (..., N) turned by theta * steps (a float, or (T, 1) steps for h's time axis); real
        eigenvalues: h itself. The angle is reduced modulo 2 pi in float64, so long sequences keep float32's
        precision."""
        if not self.rotating:
            return h
        angle = torch.remainder(self.theta.to(torch.float64) * steps, 2 * math.pi).to(h.dtype)  # (..., N / 2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        real, imaginary = h.chunk(2, dim=-1)
        return torch.cat([cos * real - sin * imaginary, sin * real + cos * imaginary], dim=-1)

    def _paired(self, rate: torch.Tensor, A_log: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: N803
        """The rate (..., N / 2) and A_log (N / 2) of complex pairs repeated onto both parts (..., N); real: as is."""
        if not self.rotating:
            return rate, A_log
        return torch.cat([rate, rate], dim=-1), torch.cat([A_log, A_log])

    def _sequence_scan(self, x: torch.Tensor) -> str:
        """The scan sequence mode runs on x: `scan` ("auto": "doubling" on CUDA, "fused" elsewhere).

        Inside a torch.func transform "fused" runs as "chunked", its reference: same equations, plain ops.
        """
        scan = self.scan if self.scan != "auto" else "doubling" if x.device.type == "cuda" else "fused"
        return "chunked" if scan == "fused" and (self.rotating or not fused_scan.applies()) else scan

    def _fused_sequence(
        self, x: torch.Tensor, hidden_state: torch.Tensor, reset: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence mode through `gate_scan`: x (B, T, input_dim) -> y (B, T, output_dim), h_T (B, N)."""
        linear = onednn_linear.linear
        scan_dtype = torch.promote_types(x.dtype, torch.float32)
        u = F.silu(linear(x, self.in_proj.weight, self.in_proj.bias))  # (B, T, H)
        z = linear(u, self.z_proj.weight, self.z_proj.bias).to(scan_dtype)  # (B, T, N)
        gate = linear(u, self.gate_proj.weight, self.gate_proj.bias).to(scan_dtype)  # (B, T, N)
        rate = linear(linear(u, self.rate_proj.weight), self.dt_proj.weight, self.dt_proj.bias).to(scan_dtype)
        keep = None if reset is None else 1.0 - reset.to(scan_dtype)  # (B, T)
        r, last = fused_scan.gate_scan(  # (B, T, N), (B, N)
            rate,
            z,
            gate,
            self.A_log.to(scan_dtype),
            self.D.to(scan_dtype),
            keep,
            hidden_state.to(scan_dtype),
            self.chunk_size,
        )
        return linear(r.to(x.dtype), self.out_proj.weight, self.out_proj.bias), last

    def _step_values(
        self, x: torch.Tensor, hidden_state: torch.Tensor, reset: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step mode without autograd (planning, acting): `_gates` and `_readout`'s operations in the same order,
        computed in place on the buffers they create. x (B, input_dim), hidden_state (B, N) -> y, h (B, N)."""
        scan_dtype = torch.promote_types(x.dtype, torch.float32)
        u = F.silu(self.in_proj(x), inplace=True)  # (B, H)
        z, gate = self.z_proj(u), self.gate_proj(u)  # (B, N) each
        rate, A_log = self._paired(self.dt_proj(self.rate_proj(u)).to(scan_dtype), self.A_log.to(scan_dtype))
        neg_delta = F.softplus(rate).mul_(-torch.exp(A_log)).clamp_max_(-fused_scan.MIN_DELTA)  # (B, N)
        normalised_input = torch.mul(neg_delta, 2.0).expm1_().neg_().sqrt_().mul_(z.to(scan_dtype))  # b (B, N)
        decay = neg_delta.exp_()  # a (B, N)
        if reset is not None:
            decay.mul_((1.0 - reset.to(scan_dtype)).unsqueeze(-1))
        turned = self._turn(hidden_state.to(scan_dtype), 1.0)
        next_hidden = torch.addcmul(normalised_input, decay, turned)  # (no in-place vmap rule)
        readout = torch.addcmul(next_hidden.to(z.dtype), self.D, z).mul_(F.silu(gate, inplace=True))
        return self.out_proj(readout), next_hidden

    def _gates(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(..., input_dim) -> state input z, gate, decay a, normalised input b: each (..., N)."""
        u = F.silu(self.in_proj(x))
        z, gate = self.z_proj(u), self.gate_proj(u)
        scan_dtype = torch.promote_types(x.dtype, torch.float32)
        rate, A_log = self._paired(self.dt_proj(self.rate_proj(u)).to(scan_dtype), self.A_log.to(scan_dtype))
        a, b = fused_scan.decay_and_input(rate, z.to(scan_dtype), A_log)
        return z, gate, a, b

    def _readout(self, h: torch.Tensor, z: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """State (..., N) -> output (..., output_dim): the state plus a skip of its input, gated, projected."""
        return self.out_proj(fused_scan.readout_input(h.to(z.dtype), z, gate, self.D))

    def save(self, path: str | os.PathLike) -> None:
        """Write config and state dict atomically (temp file + os.replace)."""
        atomic_save({"config": self.config, "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> SSM:
        """Rebuild a model written by `save`, loading with `weights_only=True`."""
        payload = load_checkpoint(path, map_location="cpu")
        if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
            raise ValueError(f"{path} is not an SSM checkpoint: expected keys 'config' and 'state_dict'")
        model = cls(**payload["config"])
        model.load_state_dict(payload["state_dict"])
        return model.to(device) if device is not None else model


SCANS = ("auto", "fused", "chunked", "doubling")
EIGENVALUES = ("real", "complex")
