"""Section `planner`: CEM planning steps per second with the SSM world model against a GRU world model, and one
control step of the pipeline against its bound.

Both world models have width 128 (SSM state and hidden width; GRU hidden size) and run through the
same `LearnedDynamics` and `CEMPlanner` on a Pendulum-v1 task: every `plan` call rolls C candidate
sequences of H steps for a few iterations, all candidates in one batch. One `plan` call is one
control step. The true physics (`true_dynamics`) run as a third row for scale. Models are untrained
(the cost of a step does not depend on the weights); their readouts are scaled down so that imagined
trajectories stay finite.

The bound: one control step of the default Pendulum run plans for E = 30 episodes (10 tasks, 3 episodes each)
with C candidates, H steps and I iterations, `tta` with one adapted weight set per episode (`torch.func.vmap`).
The same SSM arithmetic as plain batched steps over E·C rows with shared weights, H·I of them, is what a
planner step cannot go below; the projections' matrix products alone are the floor under that. Two more rows
split the rest: the same SSM steps on a single row (what every step costs in Python and per-op dispatch, whatever
the batch) and the family's reward function on the E·C transitions.

At CaDM's size (HalfCheetah, 10 episodes x 200 candidates x horizon 30 x 5 iterations, width 128) one plan call is
timed with what planning 200,000 environment steps would take at that speed.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.timing import format_table, time_interleaved
from core.ssm import SSM
from env_runner.environment import make_task_family
from env_runner.rollouts import collect
from env_runner.segments import Normalizer
from pipeline.config import defaults_for
from planning.dynamics import LearnedDynamics
from planning.planner import CEMPlanner, PlannerConfig
from planning.true_dynamics import true_dynamics

ENV_ID = "Pendulum-v1"
WIDTH = 128
CONTROL_STEP_CASES = {
    "tta": "plan call, tta: per-episode weights (vmap)",
    "shared": "plan call, shared weights",
    "bound": "bound: SSM steps on E·C rows, shared weights",
    "floor": "floor: their matrix products alone",
    "dispatch": "the same SSM steps on 1 row (per-op cost)",
    "reward": "reward function on the E·C transitions",
}
CADM_ID = "HalfCheetah-v5"  # CaDM's planner (CEM, 200 candidates, 5 iterations, horizon 30) on 10 episodes
CADM_PLANNER = PlannerConfig(horizon=30, num_candidates=200, num_iterations=5)
CADM_EPISODES, CADM_WIDTH, CADM_STEPS = 10, 128, 200_000
BOUND = CONTROL_STEP_CASES["bound"]


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


def control_step_against_bound(quick: bool = False) -> dict:
    """One `plan` call of the default Pendulum run (per-episode and shared weights) against the same SSM steps on
    E·C rows, and against their matrix products alone; prints the table and returns the medians and ratios."""
    defaults = defaults_for(ENV_ID)
    config, episodes = defaults.planner, defaults.control_tasks * defaults.control_episodes
    family = make_task_family(ENV_ID)
    tasks = family.sample(defaults.control_tasks, seed=0, split="test")
    torch.manual_seed(0)
    normalizer = Normalizer.fit(collect(family, tasks[:1], steps=200, seed=0))
    model = SSM(defaults.state_dim, family.obs_dim + family.action_dim, family.obs_dim, defaults.hidden_dim)
    with torch.no_grad():
        model.out_proj.weight.mul_(0.01)
    params = {name: value.detach() for name, value in model.named_parameters()}
    stacked = {name: value.expand(episodes, *value.shape).clone() for name, value in params.items()}
    episode_tasks = [task for task in tasks for _ in range(defaults.control_episodes)]
    reward_fn = family.planning_reward_fn(episode_tasks)
    obs = torch.zeros(episodes, family.obs_dim)
    obs[:, 0] = -1.0  # hanging down
    cases = {}  # short keys (the JSON's) -> what runs
    for key, weights in (("tta", stacked), ("shared", None)):
        dynamics = LearnedDynamics(model, normalizer, num_episodes=episodes)
        dynamics.set_params(weights, stacked=weights is not None)
        planner = CEMPlanner(dynamics, reward_fn, family.action_space, config, seed=0, num_episodes=episodes)
        cases[key] = _planning_steps(planner, obs, dynamics.init_hidden(episodes), 1)
    rows, steps = episodes * config.num_candidates, config.horizon * config.num_iterations
    x, hidden = torch.randn(rows, model.input_dim), model.init_hidden(rows)

    @torch.no_grad()
    def ssm_steps(rows_x: torch.Tensor = x, h: torch.Tensor = hidden) -> None:
        for _ in range(steps):
            _, h = model(rows_x, h)

    transition = obs.repeat_interleave(config.num_candidates, 0).reshape(episodes, config.num_candidates, -1)
    action = torch.zeros(episodes, config.num_candidates, family.action_dim)

    def rewards() -> None:
        for _ in range(steps):
            reward_fn(transition, action, transition)

    products = [
        (model.in_proj.weight, model.input_dim),
        *((layer.weight, model.hidden_dim) for layer in (model.z_proj, model.gate_proj, model.rate_proj)),
        (model.dt_proj.weight, model.dt_proj.in_features),
        (model.out_proj.weight, model.state_dim),
    ]
    operands = [(torch.randn(rows, width), weight.detach().T.contiguous()) for weight, width in products]

    def matmuls() -> None:
        for _ in range(steps):
            for left, right in operands:
                torch.mm(left, right)

    cases["bound"], cases["floor"] = ssm_steps, matmuls
    cases["dispatch"] = lambda: ssm_steps(x[:1], hidden[:1])
    cases["reward"] = rewards
    medians = time_interleaved(cases, repeats=3 if quick else 7)
    title = (
        f"{ENV_ID}, one control step of the default run: E={episodes} episodes x C={config.num_candidates} "
        f"candidates x H={config.horizon} x I={config.num_iterations}, SSM state {defaults.state_dim}, "
        f"hidden {defaults.hidden_dim}"
    )
    print(format_table(title, [(CONTROL_STEP_CASES[key], seconds) for key, seconds in medians.items()], BOUND))
    ratios = {key: seconds / medians["bound"] for key, seconds in medians.items()}
    print(f"tta plan call / bound: {ratios['tta']:.2f}x (target <= 2x)")
    return {"episodes": episodes, "config": vars(config), "median_s": medians, "vs_bound": ratios}


def cadm_sized_call(quick: bool = False) -> dict:
    """One plan call at CaDM's size on HalfCheetah (E episodes x 200 candidates x horizon 30 x 5 iterations, SSM
    width 128), per-episode and shared weights; prints it with the planning time a 200,000-step run implies."""
    family = make_task_family(CADM_ID)
    tasks = family.sample(CADM_EPISODES, seed=0, split="test")
    torch.manual_seed(0)
    normalizer = Normalizer.fit(collect(family, tasks[:1], steps=200, seed=0))
    model = SSM(CADM_WIDTH, family.obs_dim + family.action_dim, family.obs_dim, CADM_WIDTH)
    with torch.no_grad():
        model.out_proj.weight.mul_(0.01)
    stacked = {
        name: value.detach().expand(CADM_EPISODES, *value.shape).clone() for name, value in model.named_parameters()
    }
    with family.make_env(tasks[0]) as env:
        obs = torch.as_tensor(env.reset(seed=0)[0], dtype=torch.float32).expand(CADM_EPISODES, -1).contiguous()
    cases = {}
    for key, weights in (("tta", stacked), ("shared", None)):
        dynamics = LearnedDynamics(model, normalizer, num_episodes=CADM_EPISODES)
        dynamics.set_params(weights, stacked=weights is not None)
        planner = CEMPlanner(
            dynamics,
            family.planning_reward_fn(tasks),
            family.action_space,
            CADM_PLANNER,
            seed=0,
            num_episodes=CADM_EPISODES,
            termination_fn=family.batch_termination_fn(tasks),
        )
        cases[key] = _planning_steps(planner, obs, dynamics.init_hidden(CADM_EPISODES), 1)
    medians = time_interleaved(cases, repeats=2 if quick else 5)
    calls = CADM_STEPS / CADM_EPISODES  # one call acts in every episode
    hours = {key: seconds * calls / 3600 for key, seconds in medians.items()}
    title = (
        f"{CADM_ID}, one plan call at CaDM's size: E={CADM_EPISODES} x C={CADM_PLANNER.num_candidates} x "
        f"H={CADM_PLANNER.horizon} x I={CADM_PLANNER.num_iterations}, SSM width {CADM_WIDTH}"
    )
    print(
        format_table(
            title, [(CONTROL_STEP_CASES[key], seconds) for key, seconds in medians.items()], "plan call, shared weights"
        )
    )
    print(
        f"planning {CADM_STEPS:,} environment steps ({calls:,.0f} calls): "
        + ", ".join(f"{key} {value:.1f} h" for key, value in hours.items())
        + f" on {torch.get_num_threads()} thread(s)"
    )
    return {
        "episodes": CADM_EPISODES,
        "config": vars(CADM_PLANNER),
        "width": CADM_WIDTH,
        "median_s": medians,
        "hours_for_200k_steps": hours,
    }


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
        "control_step": control_step_against_bound(quick),
        "cadm_sized_call": cadm_sized_call(quick),
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
