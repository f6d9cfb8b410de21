"""Section `shared`: one run of the pipeline alone and beside a busy neighbour, under each thread setting.

A shared machine gives a run fewer cores than torch assumes. torch's CPU build parallelises with GNU OpenMP,
whose threads spin at every barrier while they wait for the others (300,000 spins by default); when a neighbour
holds one of the cores, the spinning thread burns the time slice its partner needs. The programs' default is
1,000 spins (`core/openmp.py`, set before torch loads). Each case runs `main.py` in a fresh process (OpenMP reads
its settings when it loads) with the environment and flags below, alone and beside a neighbour that keeps one core
busy (a Python busy loop); cases alternate, and the median of the repeats is reported.
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
    "GNU OpenMP's 300,000 spins (before)": ({"GOMP_SPINCOUNT": "300000"}, []),
    "1,000 spins (the default)": ({}, []),
    "OMP_WAIT_POLICY=PASSIVE (no spin)": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    "--threads 1, 300,000 spins": ({"GOMP_SPINCOUNT": "300000"}, ["--threads", "1"]),
}
OPENMP = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
RUNS = {  # name -> main.py flags
    "--quick": ["--quick"],
    "training slice (default sizes, 30 meta-updates)": [
        "--num_epochs",
        "1",
        "--iterations_per_epoch",
        "30",
        "--no-control",
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
        print(f"{name}: seconds alone, beside a busy neighbour, slowdown ({repeats} repeats, medians)")
        reference = alone[name][next(iter(CASES))]
        for case in CASES:
            print(
                f"  {case:<38}{alone[name][case]:8.1f} s{shared[name][case]:8.1f} s"
                f"{shared[name][case] / alone[name][case]:8.2f}x   (alone: {alone[name][case] / reference:.2f}x "
                f"of before)"
            )
    return {"cpu_count": os.cpu_count(), "repeats": repeats, "alone_s": alone, "shared_s": shared}
