"""Section `env`: rollout collection (`collect`) against raw gymnasium stepping of the same envs.

Both cases build 16 Pendulum-v1 envs in one SyncVectorEnv, reset them and step them with uniformly
random actions for the same number of steps. `collect` additionally applies task physics, records
every transition into preallocated buffers and restores the true final observations at episode ends;
the raw case does no bookkeeping at all. Throughput is transitions per second (envs x steps / time).
"""

from __future__ import annotations

import gymnasium as gym

from benchmarks.timing import format_table, time_interleaved
from env_runner.environment import make_task_family
from env_runner.rollouts import collect

ENV_ID = "Pendulum-v1"
NUM_ENVS = 16


def _raw_stepping(steps: int) -> None:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID)] * NUM_ENVS)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    for _ in range(steps):
        envs.step(envs.action_space.sample())
    envs.close()


def run(quick: bool = False) -> dict:
    """Time both cases interleaved; print the table and throughput ratio; return medians and ratio."""
    steps, repeats = (200, 3) if quick else (500, 7)
    family = make_task_family(ENV_ID)
    tasks = family.sample(NUM_ENVS, seed=0)
    cases = {
        "raw SyncVectorEnv": lambda: _raw_stepping(steps),
        "collect": lambda: collect(family, tasks, steps, seed=0),
    }
    medians = time_interleaved(cases, repeats=repeats)
    print(format_table(f"{ENV_ID}, {NUM_ENVS} envs x {steps} steps", list(medians.items()), "raw SyncVectorEnv"))
    transitions = NUM_ENVS * steps
    throughput = {name: transitions / seconds for name, seconds in medians.items()}
    ratio = throughput["collect"] / throughput["raw SyncVectorEnv"]
    print(f"transitions/s: raw {throughput['raw SyncVectorEnv']:,.0f}, collect {throughput['collect']:,.0f}")
    print(f"collect / raw throughput: {ratio:.3f} (target >= 0.8)")
    return {
        "env_id": ENV_ID,
        "num_envs": NUM_ENVS,
        "steps": steps,
        "repeats": repeats,
        "median_s": medians,
        "transitions_per_s": throughput,
        "collect_vs_raw_throughput": ratio,
    }
