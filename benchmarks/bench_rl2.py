"""Section `rl2`: PPO-update throughput of the RL² actor-critic, SSM memory against GRU memory.

One PPO minibatch step without the optimiser: sequence mode over a minibatch of whole trials (forward),
the clipped loss, and its backward, for trial lengths 200 and 1000 (PointNavigation's input and action
sizes, everything but the memory identical). Throughput is transitions per second (B * T / median time).
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from benchmarks.timing import format_table, time_interleaved
from meta_rl.ppo import ppo_loss
from meta_rl.rl2_policy import MEMORIES, RecurrentActorCritic, policy_inputs

OBS_DIM, ACTION_DIM, HIDDEN = 2, 2, 64


def update_step(policy: RecurrentActorCritic, batch: int, steps: int):
    """A closure running forward + loss + backward over (batch, steps) trials of random data."""
    generator = torch.Generator().manual_seed(0)
    actions = torch.randn(batch, steps, ACTION_DIM, generator=generator)
    episode_start = torch.zeros(batch, steps, dtype=torch.bool)
    episode_start[:, :: max(1, steps // 2)] = True  # two episodes per trial
    inputs = policy_inputs(
        torch.randn(batch, steps, OBS_DIM, generator=generator),
        actions.clamp(-1, 1),
        torch.randn(batch, steps, generator=generator),
        episode_start,
    )
    old_log_probs, advantages, returns = (torch.randn(batch, steps, generator=generator) for _ in range(3))
    valid = torch.ones(batch, steps, dtype=torch.bool)

    def run() -> None:
        distribution, values, _ = policy(inputs)
        loss = ppo_loss(
            distribution.log_prob(actions), old_log_probs, advantages, values, values.detach(), returns,
            distribution.entropy(), valid, clip_coef=0.2, clip_value_loss=True, ent_coef=0.01, vf_coef=0.5,
        )  # fmt: skip
        policy.zero_grad()
        loss.total.backward()

    return run


def run(quick: bool = False) -> dict:
    """Time SSM and GRU memories side by side at each trial length; print and return transitions/s and ratios."""
    batch, repeats = (4, 3) if quick else (8, 7)
    space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
    results: dict = {"batch": batch, "hidden": HIDDEN, "repeats": repeats, "threads": torch.get_num_threads()}
    for steps in (200, 1000):
        torch.manual_seed(0)
        cases = {
            f"{memory} fwd+bwd": update_step(RecurrentActorCritic(OBS_DIM, space, memory, HIDDEN), batch, steps)
            for memory in MEMORIES
        }
        medians = time_interleaved(cases, repeats=repeats)
        print(format_table(f"PPO minibatch, B={batch} trials x T={steps}, hidden {HIDDEN}", list(medians.items()),
                           "gru fwd+bwd"))  # fmt: skip
        throughput = {name.split()[0]: batch * steps / seconds for name, seconds in medians.items()}
        ratio = throughput["ssm"] / throughput["gru"]
        print(f"  transitions/s: ssm {throughput['ssm']:,.0f}, gru {throughput['gru']:,.0f} (ssm / gru {ratio:.2f}x)")
        results[f"T{steps}"] = {"seconds": medians, "transitions_per_s": throughput, "ssm_over_gru": ratio}
    print("target: ssm / gru >= 1.5x at T=1000 on CPU")
    return results


if __name__ == "__main__":
    torch.set_num_threads(1)
    run()
