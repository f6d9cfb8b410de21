"""Benchmark suite: every section measures the project against the obvious alternative, side by side.

    ssm-metarl-bench                          # all sections (or: python experiments/quick_benchmark.py)
    ssm-metarl-bench --section ssm            # one section
    ssm-metarl-bench --json out.json          # also write the results as JSON

Each section module `benchmarks.bench_<section>` exposes `run(quick: bool) -> dict` and prints its own table
of ratios.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import time
from pathlib import Path

import torch

from core.checkpoint import atomic_write_json
from pipeline.console import OneLineParser
from pipeline.provenance import command_line, provenance

SECTIONS = ("ssm", "maml", "env", "adapt", "planner", "rl2", "pipeline")  # default run
EXTRA_SECTIONS = ("gpu", "shared")  # CUDA only; whole runs beside a busy neighbour (minutes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--section",
        choices=SECTIONS + EXTRA_SECTIONS,
        action="append",
        help=f"section to run (repeatable; default: {', '.join(SECTIONS)})",
    )
    parser.add_argument("--json", type=Path, help="write all results to this JSON file")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for CPU timings")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (smoke run)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen sections; returns every section's results (what `--json` writes)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": args.threads,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "provenance": provenance(command_line(argv), "cuda" if torch.cuda.is_available() else "cpu"),
    }
    start = time.perf_counter()
    for section in args.section or SECTIONS:
        module = importlib.import_module(f"benchmarks.bench_{section}")
        print(f"\n=== {section} ===", flush=True)
        results[section] = module.run(quick=args.quick)
    results["total_s"] = time.perf_counter() - start
    print(f"\nall sections: {results['total_s']:.1f} s")
    if args.json:
        atomic_write_json(results, args.json)
    return results


def console_main() -> None:
    """The `ssm-metarl-bench` console script: `main` with exit status 0 (a returned dict would exit with 1)."""
    main()


if __name__ == "__main__":
    main()
