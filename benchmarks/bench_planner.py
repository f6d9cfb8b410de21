"""Section `planner`: CEM planning steps per second with the SSM world model against a GRU world model.

Both world models have width 128 (SSM state and hidden width; GRU hidden size) and run through the
same `LearnedDynamics` and `CEMPlanner` on a Pendulum-v1 task: every `plan` call rolls C candidate
sequences of H steps for a few iterations, all candidates in one batch. One `plan` call is one
control step. The true physics (`true_dynamics`) run as a third row for scale. Models are untrained
(the cost of a step does not depend on the weights); their readouts are scaled down so that imagined
trajectories stay finite.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.timing import format_table, time_interleaved
from core.ssm import SSM
from env_runner.environment import make_task_family
from env_runner.rollouts import collect
from env_runner.segments import Normalizer
from planning.dynamics import LearnedDynamics
from planning.planner import CEMPlanner, PlannerConfig
from planning.true_dynamics import true_dynamics

ENV_ID = "Pendulum-v1"
WIDTH = 128


class GRUWorldModel(nn.Module):
    """A GRUCell and a linear readout: `forward(x (B, D_in), h (B, W)) -> (y (B, D_out), h (B, W))`."""

    def __init__(self, input_dim: int, output_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.cell = nn.GRUCell(input_dim, width)
        self.readout = nn.Linear(width, output_dim)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.width, device=self.readout.weight.device)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        next_hidden = self.cell(x, hidden)
        return self.readout(next_hidden), next_hidden


def _planning_steps(planner: CEMPlanner, obs: torch.Tensor, hidden: torch.Tensor, steps: int):
    def run() -> None:
        planner.clear_plans()
        for _ in range(steps):
            planner.plan(obs, hidden)

    return run


def run(quick: bool = False) -> dict:
    """Time `plan` with each dynamics, interleaved; print the table and ratio; return steps/s and ratio."""
    config = PlannerConfig(horizon=20, num_candidates=300, num_iterations=4)
    steps, repeats = (3, 3) if quick else (5, 5)
    torch.manual_seed(0)
    family = make_task_family(ENV_ID)
    task = family.sample(1, seed=0, split="test")[0]
    normalizer = Normalizer.fit(collect(family, [task], steps=200, seed=0))
    input_dim, obs_dim = family.obs_dim + family.action_dim, family.obs_dim
    models = {
        "ssm": SSM(state_dim=WIDTH, input_dim=input_dim, output_dim=obs_dim, hidden_dim=WIDTH),
        "gru": GRUWorldModel(input_dim, obs_dim, WIDTH),
    }
    with torch.no_grad():
        models["ssm"].out_proj.weight.mul_(0.01)
        models["gru"].readout.weight.mul_(0.01)
    dynamics = {name: LearnedDynamics(model, normalizer) for name, model in models.items()}
    dynamics["true physics"] = true_dynamics(family, [task])
    with family.make_env(task) as env:
        obs = torch.as_tensor(env.reset(seed=0)[0])[None]  # (1, obs_dim): one episode
    reward_fn = family.reward_fn(task)
    cases = {}
    for name, dyn in dynamics.items():
        planner = CEMPlanner(dyn, reward_fn, family.action_space, config, seed=0)
        cases[f"cem + {name}"] = _planning_steps(planner, obs, dyn.init_hidden(1), steps)
    medians = time_interleaved(cases, repeats=repeats)
    per_step = {name: seconds / steps for name, seconds in medians.items()}
    title = (
        f"{ENV_ID}, one plan call: C={config.num_candidates} H={config.horizon} "
        f"iterations={config.num_iterations}, width {WIDTH}"
    )
    print(format_table(title, list(per_step.items()), "cem + gru"))
    steps_per_s = {name: 1.0 / seconds for name, seconds in per_step.items()}
    ratio = steps_per_s["cem + ssm"] / steps_per_s["cem + gru"]
    print("planning steps/s: " + ", ".join(f"{name} {value:,.1f}" for name, value in steps_per_s.items()))
    print(f"ssm / gru planning steps per second: {ratio:.3f} (higher is faster for the SSM)")
    return {
        "env_id": ENV_ID,
        "width": WIDTH,
        "config": vars(config),
        "plan_calls": steps,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "median_s_per_step": per_step,
        "steps_per_s": steps_per_s,
        "ssm_vs_gru_steps_per_s": ratio,
    }
