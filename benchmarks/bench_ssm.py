"""Section `ssm`: the SSM's sequence mode against its own step loop and nn.LSTM / nn.GRU of the same width.

"ssm sequence" is the default (scan="auto": the fused gate-and-scan Function on CPU); "ssm sequence, unfused"
is the reference path (scan="chunked": autograd over plain ops), the implementation before the fused layer.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.timing import format_table, time_interleaved
from core.ssm import SSM

WIDTH = 128


def _step_loop(model: SSM, x: torch.Tensor) -> torch.Tensor:
    """Step mode over a (B, T, D) sequence, the way a Python loop over time would do it."""
    hidden = model.init_hidden(x.shape[0])
    outputs = []
    for x_t in x.unbind(1):
        y_t, hidden = model(x_t, hidden)
        outputs.append(y_t)
    return torch.stack(outputs, 1)


def sequence_cases(batch: int, steps: int, device: str = "cpu", step_loop: bool = True) -> dict[str, dict]:
    """Forward and forward+backward closures of the SSM (sequence mode, step loop) and nn.LSTM / nn.GRU."""
    torch.manual_seed(0)
    ssm = SSM(state_dim=WIDTH, input_dim=WIDTH, output_dim=WIDTH, hidden_dim=WIDTH, device=device)
    unfused = SSM(state_dim=WIDTH, input_dim=WIDTH, output_dim=WIDTH, hidden_dim=WIDTH, device=device, scan="chunked")
    unfused.load_state_dict(ssm.state_dict())
    lstm = nn.LSTM(WIDTH, WIDTH, batch_first=True, device=device)
    gru = nn.GRU(WIDTH, WIDTH, batch_first=True, device=device)
    x = torch.randn(batch, steps, WIDTH, requires_grad=True, device=device)
    forwards = {
        "ssm sequence": lambda: ssm(x)[0],
        "ssm sequence, unfused": lambda: unfused(x)[0],
        "ssm step loop": lambda: _step_loop(ssm, x),
        "nn.LSTM": lambda: lstm(x)[0],
        "nn.GRU": lambda: gru(x)[0],
    }
    if not step_loop:
        del forwards["ssm step loop"]

    def forward_only(fn):
        def run():
            with torch.no_grad():
                fn()

        return run

    def forward_backward(fn):
        return lambda: fn().sum().backward()

    return {
        "forward": {name: forward_only(fn) for name, fn in forwards.items()},
        "forward+backward": {name: forward_backward(fn) for name, fn in forwards.items()},
    }


def step_cases(batch: int, device: str = "cpu") -> dict:
    """Closures that run 50 single steps of the SSM, nn.GRUCell and nn.LSTMCell."""
    torch.manual_seed(0)
    ssm = SSM(state_dim=WIDTH, input_dim=WIDTH, output_dim=WIDTH, hidden_dim=WIDTH, device=device)
    gru_cell = nn.GRUCell(WIDTH, WIDTH, device=device)
    lstm_cell = nn.LSTMCell(WIDTH, WIDTH, device=device)
    x = torch.randn(batch, WIDTH, device=device)
    h = torch.zeros(batch, WIDTH, device=device)
    c = torch.zeros(batch, WIDTH, device=device)

    def steps(fn):
        def run():
            with torch.no_grad():
                for _ in range(50):
                    fn()

        return run

    return {
        "ssm step": steps(lambda: ssm(x, h)),
        "nn.GRUCell": steps(lambda: gru_cell(x, h)),
        "nn.LSTMCell": steps(lambda: lstm_cell(x, (h, c))),
    }


def run(quick: bool = False) -> dict:
    """Time every case; print tables and ratios; return the medians (seconds) and ratios."""
    batch, steps, repeats = (16, 256, 3) if quick else (16, 1024, 5)
    results: dict = {
        "batch": batch,
        "steps": steps,
        "width": WIDTH,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }
    for mode, cases in sequence_cases(batch, steps).items():
        medians = time_interleaved(cases, repeats=repeats)
        print(format_table(f"sequence {mode}, B={batch} T={steps} width={WIDTH}", list(medians.items()), "nn.LSTM"))
        results[mode] = medians
    for step_batch in (16, 256):
        medians = {
            name: seconds / 50 for name, seconds in time_interleaved(step_cases(step_batch), repeats=repeats).items()
        }
        print(format_table(f"one step, B={step_batch}", list(medians.items()), "nn.GRUCell", unit="us"))
        results[f"step_b{step_batch}"] = medians
    fwd, fwd_bwd = results["forward"], results["forward+backward"]
    results["ratios"] = {
        "sequence_fwd_bwd_vs_lstm": fwd_bwd["ssm sequence"] / fwd_bwd["nn.LSTM"],
        "sequence_fwd_vs_lstm": fwd["ssm sequence"] / fwd["nn.LSTM"],
        "unfused_fwd_bwd_vs_lstm": fwd_bwd["ssm sequence, unfused"] / fwd_bwd["nn.LSTM"],
        "unfused_fwd_vs_lstm": fwd["ssm sequence, unfused"] / fwd["nn.LSTM"],
        "sequence_vs_step_loop_fwd_bwd": fwd_bwd["ssm sequence"] / fwd_bwd["ssm step loop"],
        "step_b256_vs_grucell": results["step_b256"]["ssm step"] / results["step_b256"]["nn.GRUCell"],
        "step_b16_vs_grucell": results["step_b16"]["ssm step"] / results["step_b16"]["nn.GRUCell"],
    }
    print(
        "ratios (lower is faster for the SSM; targets: fwd+bwd vs LSTM <= 0.6, fwd vs LSTM <= 0.5, "
        "step b256 vs GRUCell <= 1.0)"
    )
    for name, ratio in results["ratios"].items():
        print(f"  {name:<36}{ratio:8.3f}")
    return results
