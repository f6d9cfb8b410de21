"""Section `adapt`: one `Adapter.update_step` (restart mode) against a plain hand-written torch.optim loop.

Both restore theta*, take the same SGD steps on a window of 32 transitions and run the adapted model once
more over the window (the state to carry on, the loss after). The Adapter adds its safeguards: a snapshot
for rollback, finite checks of losses, gradients and weights. Their weights are asserted equal before timing.
`OnlineAdapter.observe` (window bookkeeping + one update per environment step) is timed as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaptation import AdaptationConfig, Adapter, OnlineAdaptationConfig, OnlineAdapter
from benchmarks.timing import format_table, time_interleaved
from core.ssm import SSM
from meta_rl.meta_maml import MetaMAML

INPUT_DIM, OUTPUT_DIM = 4, 3  # Pendulum: (cos, sin, thdot, torque) -> delta obs
WIDTH, WINDOW, LEARNING_RATE = 64, 32, 0.01


def make_model() -> SSM:
    torch.manual_seed(0)
    return SSM(state_dim=WIDTH, input_dim=INPUT_DIM, output_dim=OUTPUT_DIM, hidden_dim=WIDTH)


def plain_update(model: SSM, reference: dict[str, torch.Tensor], x, y, hidden, num_steps: int) -> torch.Tensor:
    """The obvious alternative: load theta*, `num_steps` SGD steps, one forward for the state after the window."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(reference[name])
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    for _ in range(num_steps):
        optimizer.zero_grad()
        F.mse_loss(model(x, hidden)[0], y).backward()
        optimizer.step()
    with torch.no_grad():
        output, next_hidden = model(x, hidden)
        F.mse_loss(output, y).item()
    return next_hidden


def _check_same_weights(adapter: Adapter, model: SSM) -> None:
    for name, param in model.named_parameters():
        if not torch.allclose(param, adapter.model.get_parameter(name), atol=1e-6):
            raise AssertionError(f"Adapter and plain loop disagree on {name}")


def _cases(num_steps: int, x: torch.Tensor, y: torch.Tensor, transitions: torch.Tensor) -> dict:
    """Callables doing one update each: the Adapter, the plain loop, the online helper (on a full window)."""
    adapter = Adapter(make_model(), AdaptationConfig(learning_rate=LEARNING_RATE, num_steps=num_steps))
    plain_model = make_model()
    reference = {name: param.detach().clone() for name, param in plain_model.named_parameters()}
    hidden = plain_model.init_hidden(1)
    every_step = OnlineAdaptationConfig(
        num_steps=num_steps, window=WINDOW, update_every=1, window_state="carried", max_loss_increase=None
    )
    online = OnlineAdapter(MetaMAML(make_model(), inner_lr=LEARNING_RATE), every_step)
    not_a_start, entering = torch.zeros(1, dtype=torch.bool), online.meta.model.init_hidden(1)

    def observe(transition: torch.Tensor) -> None:
        online.observe(transition[None, :INPUT_DIM], transition[None, INPUT_DIM:], not_a_start, entering)

    for transition in transitions:
        observe(transition)
    adapter.update_step(x, y)
    plain_update(plain_model, reference, x, y, hidden, num_steps)
    _check_same_weights(adapter, plain_model)
    return {
        "Adapter.update_step": lambda: adapter.update_step(x, y),
        "plain torch.optim loop": lambda: plain_update(plain_model, reference, x, y, hidden, num_steps),
        "OnlineAdapter.observe": lambda: observe(transitions[0]),
    }


def run(quick: bool = False) -> dict:
    """Time update_step against the plain loop for 1 and 5 steps; print a table and the ratios."""
    repeats, updates_per_sample = (11, 4) if quick else (21, 8)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, WINDOW, INPUT_DIM, generator=generator)
    y = torch.randn(1, WINDOW, OUTPUT_DIM, generator=generator)
    transitions = torch.randn(WINDOW, INPUT_DIM + OUTPUT_DIM, generator=generator)
    results: dict = {"window": WINDOW, "width": WIDTH, "repeats": repeats, "threads": torch.get_num_threads()}
    for num_steps in (1, 5):
        cases = {name: _repeated(fn, updates_per_sample) for name, fn in _cases(num_steps, x, y, transitions).items()}
        medians = {
            name: seconds / updates_per_sample for name, seconds in time_interleaved(cases, repeats=repeats).items()
        }
        title = f"one update, restart mode, {num_steps} SGD step(s), SSM state/hidden {WIDTH}, window {WINDOW}"
        print(format_table(title, list(medians.items()), "plain torch.optim loop"))
        overhead = medians["Adapter.update_step"] / medians["plain torch.optim loop"]
        print(f"  overhead of the safeguards (update_step / plain loop): {overhead:.2f}x")
        results[f"steps_{num_steps}"] = {"medians_s": medians, "ratio_vs_plain": overhead}
    return results


def _repeated(fn, times: int):
    def run_several():
        for _ in range(times):
            fn()

    return run_several
