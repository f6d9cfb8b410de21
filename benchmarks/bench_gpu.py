"""Section `gpu` (CUDA only, not part of the default run): the SSM against cuDNN LSTM/GRU at long sequences,
and vmapped meta_update with 100 tasks against the per-task loop, with peak GPU memory.

    ssm-metarl-bench --section gpu --json gpu.json
"""

from __future__ import annotations

import torch

from benchmarks.bench_maml import assert_equal_gradients, make_tasks, update_cases
from benchmarks.bench_ssm import WIDTH, sequence_cases, step_cases
from benchmarks.timing import format_table, time_interleaved


def _peak_memory_mib(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def run(quick: bool = False) -> dict:
    if not torch.cuda.is_available():
        raise RuntimeError("section gpu needs CUDA: torch.cuda.is_available() is False")
    device, repeats = "cuda", 3 if quick else 10
    results: dict = {"device": torch.cuda.get_device_name(), "repeats": repeats, "width": WIDTH}
    for steps in (512, 2048):
        for mode, cases in sequence_cases(16, steps, device, step_loop=False).items():
            medians = time_interleaved(cases, repeats=repeats, warmup=2)
            print(format_table(f"{mode}, B=16 T={steps} width={WIDTH}", list(medians.items()), "nn.LSTM"))
            results[f"T{steps} {mode}"] = medians
    for batch in (16, 256):
        medians = {
            name: seconds / 50
            for name, seconds in time_interleaved(step_cases(batch, device), repeats=repeats, warmup=2).items()
        }
        print(format_table(f"one step, B={batch}", list(medians.items()), "nn.GRUCell", unit="us"))
        results[f"step_b{batch}"] = medians

    num_tasks, width, inner_lr = 100, 64, 0.01
    tasks = make_tasks(num_tasks, 8, 32, device)
    gap = assert_equal_gradients(width, tasks, inner_lr, device)
    cases = update_cases(width, tasks, inner_lr, device)
    medians = time_interleaved(cases, repeats=repeats, warmup=2)
    print(
        format_table(
            f"meta_update, {num_tasks} tasks, width {width}, B=8 T=32, second order",
            list(medians.items()),
            "per-task loop",
        )
    )
    memory = {name: _peak_memory_mib(fn) for name, fn in cases.items()}
    print(f"  peak GPU memory (MiB): {memory}; max gradient gap {gap:.2e}")
    results["maml"] = {
        "num_tasks": num_tasks,
        "medians_s": medians,
        "peak_memory_mib": memory,
        "speedup_vs_per_task_loop": medians["per-task loop"] / medians["MetaMAML.meta_update (vmap)"],
    }
    return results
