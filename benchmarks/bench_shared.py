"""Section `shared`: one run of the pipeline alone and beside a busy neighbour, under each thread setting.

A shared machine gives a run fewer cores than torch assumes. torch's CPU build parallelises with GNU OpenMP, whose
threads spin at every barrier while they wait for the others (300,000 spins by default); when a neighbour holds one
of the cores, the spinning thread burns the time slice its partner needs, and a fixed thread count either wastes a
quiet machine (one thread) or stalls beside a neighbour (two). The programs' default follows the load instead
(`core.threads`): every core while no other process keeps one busy, one fewer per core another process takes.
Each case runs `main.py` in a fresh process (OpenMP reads its settings when it loads) with the environment and flags
below, alone and beside a neighbour that keeps one core busy (a Python busy loop); cases alternate, and the median
of the repeats is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = Path(__file__).resolve().parents[1] / "main.py"
CASES = {  # name -> (OpenMP environment, extra flags)
    "default: threads follow the load": ({}, []),
    "--threads 2": ({}, ["--threads", "2"]),
    "--threads 2, GOMP_SPINCOUNT=1000 (the previous default)": ({"GOMP_SPINCOUNT": "1000"}, ["--threads", "2"]),
    "--threads 2, OMP_WAIT_POLICY=active": ({"OMP_WAIT_POLICY": "active"}, ["--threads", "2"]),
    "--threads 1": ({}, ["--threads", "1"]),
}
OPENMP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
RUNS = {  # name -> main.py flags
    "--quick": ["--quick"],
    "training slice (default sizes, 100 meta-updates, prediction, no control)": [
        "--num_epochs",
        "1",
        "--iterations_per_epoch",
        "100",
        "--no-control",
    ],
    "control slice (10 meta-updates, control on 2 test and 2 OOD tasks)": [
        "--num_epochs",
        "1",
        "--iterations_per_epoch",
        "10",
        "--onpolicy_rounds",
        "0",
        "--control_tasks",
        "2",
    ],
}


def _seconds(flags: list[str], openmp: dict[str, str]) -> float:
    environment = {name: value for name, value in os.environ.items() if name not in OPENMP} | openmp
    with tempfile.TemporaryDirectory() as out_dir:
        command = [sys.executable, str(MAIN), *flags, "--no_progress", "--out_dir", out_dir]
        start = time.perf_counter()
        subprocess.run(command, env=environment, check=True, capture_output=True)
        return time.perf_counter() - start


def _timings(runs: dict[str, list[str]], repeats: int, neighbour: bool) -> dict[str, dict[str, float]]:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    try:
        samples = {run: {case: [] for case in CASES} for run in runs}
        for _ in range(repeats):
            for run, flags in runs.items():
                for case, (openmp, extra) in CASES.items():
                    samples[run][case].append(_seconds([*flags, *extra], openmp))
                    where = "beside the neighbour" if neighbour else "alone"
                    print(f"  {run} | {case} | {where}: {samples[run][case][-1]:.1f} s", flush=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return {
        run: {case: statistics.median(values) for case, values in by_case.items()} for run, by_case in samples.items()
    }


def run(quick: bool = False) -> dict:
    """Median seconds of each run and case, alone and beside the neighbour; prints the slowdowns."""
    runs = {"--quick": RUNS["--quick"]} if quick else RUNS
    repeats = 1 if quick else 2
    alone = _timings(runs, repeats, neighbour=False)
    shared = _timings(runs, repeats, neighbour=True)
    for name in runs:
        print(f"{name}: seconds alone, beside a busy neighbour ({repeats} repeats, medians), each / the default's")
        default = next(iter(CASES))
        for case in CASES:
            print(
                f"  {case:<58}{alone[name][case]:8.1f} s ({alone[name][case] / alone[name][default]:.2f}x)"
                f"{shared[name][case]:8.1f} s ({shared[name][case] / shared[name][default]:.2f}x)"
            )
    return {"cpu_count": os.cpu_count(), "repeats": repeats, "alone_s": alone, "shared_s": shared}
