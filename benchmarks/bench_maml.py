"""Section `maml`: vmapped `MetaMAML.meta_update` against a per-task loop as learn2learn and higher do it, and
against its hardware bound: the same computation on all tasks' windows as one batch with one shared parameter
set (what vmap batches, minus the per-task weights).

The per-task loop: for each task, `functional_call` on the support set, `torch.autograd.grad(create_graph=True)`,
the query loss under the fast weights, `backward()`; then one optimizer step. Same model, tasks and
optimizer; the meta-gradients of both are asserted equal before timing.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from benchmarks.timing import format_table, time_interleaved
from core.ssm import SSM
from meta_rl.meta_maml import MetaMAML

INPUT_DIM, OUTPUT_DIM = 4, 3  # Pendulum: (cos, sin, thdot, torque) -> delta obs


def make_model(width: int, device: str = "cpu") -> SSM:
    torch.manual_seed(0)
    return SSM(state_dim=width, input_dim=INPUT_DIM, output_dim=OUTPUT_DIM, hidden_dim=width, device=device)


def make_tasks(num_tasks: int, batch: int, steps: int, device: str = "cpu") -> list[tuple[torch.Tensor, ...]]:
    generator = torch.Generator().manual_seed(0)
    return [
        tuple(torch.randn(batch, steps, dim, generator=generator).to(device) for dim in (INPUT_DIM, OUTPUT_DIM) * 2)
        for _ in range(num_tasks)
    ]


def per_task_loop_gradients(model: SSM, tasks, inner_lr: float) -> None:
    """Accumulate the second-order meta-gradient in `.grad`, one task at a time."""
    params = dict(model.named_parameters())
    for support_x, support_y, query_x, query_y in tasks:
        hidden = model.init_hidden(support_x.shape[0])
        support_loss = F.mse_loss(functional_call(model, params, (support_x, hidden))[0], support_y)
        grads = torch.autograd.grad(support_loss, list(params.values()), create_graph=True)
        fast = {name: p - inner_lr * g for (name, p), g in zip(params.items(), grads, strict=True)}
        query_loss = F.mse_loss(functional_call(model, fast, (query_x, hidden))[0], query_y)
        (query_loss / len(tasks)).backward()


def assert_equal_gradients(width: int, tasks, inner_lr: float, device: str = "cpu") -> float:
    """Max gap between the vmapped and the per-task meta-gradients; raises AssertionError if they differ."""
    model = make_model(width, device)
    learner = MetaMAML(model, inner_lr=inner_lr)
    batched = torch.autograd.grad(learner.meta_loss(tasks), list(model.parameters()))
    per_task_loop_gradients(model, tasks, inner_lr)
    worst = max((g - p.grad).abs().max().item() for g, p in zip(batched, model.parameters(), strict=True))
    scale = max(g.abs().max().item() for g in batched)
    if worst > 1e-4 * max(scale, 1.0):
        raise AssertionError(f"vmapped and per-task meta-gradients differ by {worst:.3g} (scale {scale:.3g})")
    return worst


def update_cases(width: int, tasks, inner_lr: float, device: str = "cpu") -> dict:
    """One full meta-update (gradients and Adam step) each way, on models with the same initial weights."""
    vmap_learner = MetaMAML(make_model(width, device), inner_lr=inner_lr)
    loop_model = make_model(width, device)
    loop_optimizer = torch.optim.Adam(loop_model.parameters(), lr=1e-3)

    def per_task_update():
        loop_optimizer.zero_grad()
        per_task_loop_gradients(loop_model, tasks, inner_lr)
        loop_optimizer.step()

    bound_model = make_model(width, device)
    bound_optimizer = torch.optim.Adam(bound_model.parameters(), lr=1e-3)
    support_x, support_y, query_x, query_y = (torch.cat(parts) for parts in zip(*tasks, strict=True))

    def shared_parameter_bound():
        """The same forward, inner gradient and double backward on all tasks' windows as one batch, with one
        shared parameter set: the work vmap batches, without per-task weights (the cost it cannot go below)."""
        bound_optimizer.zero_grad()
        per_task_loop_gradients(bound_model, [(support_x, support_y, query_x, query_y)], inner_lr)
        bound_optimizer.step()

    return {
        "MetaMAML.meta_update (vmap)": lambda: vmap_learner.meta_update(tasks),
        "per-task loop": per_task_update,
        "shared-parameter bound": shared_parameter_bound,
    }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"{field} not in /proc/self/status")


def _peak_rss_child(kind: str, width: int, num_tasks: int, batch: int, steps: int, queue) -> None:
    torch.set_num_threads(1)
    tasks = make_tasks(num_tasks, batch, steps)
    model = make_model(width)
    learner = MetaMAML(model, inner_lr=0.01)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
    baseline = _status_kib("VmRSS")
    for _ in range(2):
        if kind == "vmap":
            learner.meta_update(tasks)
        else:
            learner.optimizer.zero_grad()
            per_task_loop_gradients(model, tasks, 0.01)
            learner.optimizer.step()
    queue.put((_status_kib("VmHWM") - baseline) / 1024)


def peak_memory_mib(kind: str, width: int, num_tasks: int, batch: int, steps: int) -> float:
    """Growth of peak resident memory (MiB) over two updates on the CPU, measured in a fresh Linux process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_peak_rss_child, args=(kind, width, num_tasks, batch, steps, queue))
    process.start()
    result = queue.get(timeout=300)
    process.join()
    return result


def run(quick: bool = False, num_tasks: int = 25, width: int = 64) -> dict:
    batch, steps, inner_lr = 8, 32, 0.01
    repeats = 3 if quick else 7
    tasks = make_tasks(num_tasks, batch, steps)
    worst = assert_equal_gradients(width, tasks, inner_lr)

    medians = time_interleaved(update_cases(width, tasks, inner_lr), repeats=repeats)
    title = f"meta_update, {num_tasks} tasks, SSM width {width}, B={batch} T={steps}, 1 inner step, second order"
    print(format_table(title, list(medians.items()), "per-task loop"))
    speedup = medians["per-task loop"] / medians["MetaMAML.meta_update (vmap)"]
    to_bound = medians["MetaMAML.meta_update (vmap)"] / medians["shared-parameter bound"]
    memory = {kind: peak_memory_mib(kind, width, num_tasks, batch, steps) for kind in ("vmap", "loop")}
    print(f"  speedup of vmap over the per-task loop: {speedup:.2f}x (target >= 4x); max gradient gap {worst:.2e}")
    print(f"  meta_update / shared-parameter bound: {to_bound:.2f}x (target <= 1.5x)")
    print(f"  peak RSS growth: vmap {memory['vmap']:.0f} MiB, per-task loop {memory['loop']:.0f} MiB")
    return {
        "num_tasks": num_tasks,
        "width": width,
        "batch": batch,
        "steps": steps,
        "medians_s": medians,
        "speedup_vs_per_task_loop": speedup,
        "ratio_to_shared_parameter_bound": to_bound,
        "max_gradient_gap": worst,
        "peak_rss_growth_mib": memory,
    }
