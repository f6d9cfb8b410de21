"""RL² training throughput on POPGym's tasks, memory against memory: the measurement each family's iterations are
sized from (one run within 20 minutes on one thread, a second run beside it).

    python -m experiments.popgym_throughput --out docs/selection/popgym_throughput.json
    python -m experiments.popgym_throughput --env_names popgym-RepeatPreviousHard-v0 --memories ssm_complex gru
    python -m experiments.popgym_throughput --quick       # one task, two iterations: a smoke run

Every (task, memory) trains `--iterations` PPO iterations of the family's RL² settings (collection and updates, no
val trials) on one torch thread; the first iteration (building the environments, the first allocations) is not
timed. Throughput is environment steps per second of the timed iterations; `iterations_for` is how many iterations
fit `--minutes` at it when every episode runs to its full length (a learned pole's do; rounded down to a multiple
of 25, the val measurements' spacing).

Output (`--out`): {"minutes", "iterations_timed", "threads", "rows": [{"env_name", "memory", "episode_length",
"episodes_per_trial", "steps_per_iteration" (measured), "longest_iteration", "steps_per_s", "iterations_for",
"parameters"}], "provenance"}
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from core.checkpoint import atomic_write_json
from env_runner.environment import make_task_family
from env_runner.popgym_families import POPGYM_IDS
from experiments.published import POPGYM_TASKS
from meta_rl.rl2 import train_rl2
from meta_rl.rl2_policy import MEMORIES
from pipeline.config import defaults_for
from pipeline.data import sample_splits
from pipeline.provenance import provenance

TASKS = tuple(f"popgym-{task}-v0" for task in POPGYM_TASKS)  # the tasks the results compare memories on
VAL_SPACING = 25


def measure(env_name: str, memory: str, iterations: int, minutes: float) -> dict:
    """Train `iterations` iterations of `env_name`'s RL² settings with `memory`; its throughput and what fits."""
    config = replace(defaults_for(env_name), algo="rl2")
    rl2 = replace(config.rl2, iterations=iterations, val_every=0)
    family = make_task_family(env_name, protocol=config.protocol)
    splits = sample_splits(family, config)
    stamps: list[tuple[float, int]] = []
    policy, _ = train_rl2(
        family,
        splits.train,
        rl2,
        seed=0,
        memory=memory,
        progress=False,
        on_iteration=lambda row: stamps.append((time.perf_counter(), row["env_steps"])),
    )
    (first_s, first_steps), (last_s, last_steps) = stamps[0], stamps[-1]
    steps_per_s = (last_steps - first_steps) / (last_s - first_s)
    # the most an iteration can take: every trial's episodes run to their length (a balanced pole's do)
    longest_iteration = rl2.trials_per_iteration * rl2.episodes_per_trial * family.episode_length
    fitting = int(minutes * 60 * steps_per_s / longest_iteration)
    return {
        "env_name": env_name,
        "memory": memory,
        "episode_length": family.episode_length,
        "episodes_per_trial": rl2.episodes_per_trial,
        "steps_per_iteration": (last_steps - first_steps) / (len(stamps) - 1),
        "longest_iteration": longest_iteration,
        "steps_per_s": steps_per_s,
        "iterations_for": max(VAL_SPACING, fitting // VAL_SPACING * VAL_SPACING),
        "parameters": sum(p.numel() for p in policy.parameters()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_names", nargs="+", default=list(TASKS), choices=POPGYM_IDS, metavar="ENV_NAME")
    parser.add_argument("--memories", nargs="+", default=list(MEMORIES), choices=MEMORIES)
    parser.add_argument("--iterations", type=int, default=6, help="iterations per (task, memory), the first untimed")
    parser.add_argument("--minutes", type=float, default=20.0, help="the wall time a run's training may take")
    parser.add_argument("--out", type=Path, default=None, help="write the rows to this JSON file")
    parser.add_argument("--quick", action="store_true", help="one task, two iterations per memory")
    args = parser.parse_args(argv)
    if args.iterations < 2:
        parser.error(f"--iterations must be at least 2 (the first is not timed), got {args.iterations}")
    if args.quick:
        args.env_names, args.iterations = args.env_names[:1], 2
    torch.set_num_threads(1)
    rows = []
    for env_name in args.env_names:
        for memory in args.memories:
            rows.append(measure(env_name, memory, args.iterations, args.minutes))
            row = rows[-1]
            print(
                f"{env_name:36s} {memory:12s} episode {row['episode_length']:5d}  {row['steps_per_s']:8,.0f} steps/s"
                f"  {row['iterations_for']:5d} iterations in {args.minutes:g} min"
            )
    result = {
        "minutes": args.minutes,
        "iterations_timed": args.iterations - 1,
        "threads": 1,
        "rows": rows,
        "provenance": provenance(sys.argv if argv is None else argv, "cpu"),
    }
    if args.out is not None:
        atomic_write_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
