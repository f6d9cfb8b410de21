"""A planner acting in E real environments at once (one planner call per step for all of them), and random play.

Every environment runs for `steps` steps: when one of its episodes ends (terminated or truncated), it is
reset (with the next seed of its stream), its trajectory state returns to `init_hidden`, the planner forgets
its warm start, and the next transition is marked as an episode start. The result is a `Rollouts` of E rows
of equal length; `first_episode_returns` reads the return of each row's first episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from core import threads
from core.parameters import Params
from env_runner.actions import to_model_action, uniform_action, unit_to_env_action
from env_runner.rollouts import Rollouts
from env_runner.tasks import Task, TaskFamily
from planning.planner import ShootingPlanner

ModelUpdate = tuple[Params, torch.Tensor]  # stacked weights (E, ...) per parameter, hidden states (E, N)
TransitionHook = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], ModelUpdate | None
]


def run_episodes(
    envs: Sequence[gym.Env],
    planner: ShootingPlanner,
    seeds: Sequence[int],
    steps: int,
    *,
    on_transition: TransitionHook | None = None,
    until_first_done: bool = False,
    explore_steps: int = 0,
    explore_seed: int = 0,
) -> Rollouts:
    """Let `planner` act in `envs` (E of them, made by `TaskFamily.make_env`) for `steps` steps each.

    The planner's dynamics start every episode from `init_hidden` and advance with `observe` on every real
    transition. `on_transition(obs (E, obs_dim), model action (E, action_dim), next_obs (E, obs_dim),
    reward (E,), episode_start (E,), hidden_before (E, N))` runs after each step (hidden_before: the states that entered
    the transition), once the states have advanced; when it returns
    `(params, hidden)`, the dynamics use those per-episode weights from the next planning step on and the
    real trajectories' states become `hidden`. `seeds[e]` seeds env e's first reset (later resets draw from
    its stream). `until_first_done` stops once every env has finished its first episode. The first `explore_steps`
    steps of every episode act uniformly at random (from a generator seeded with `explore_seed`) instead of as the
    planner would: what a model that must observe a task before it can plan on it (a learned reward) adapts on.
    """
    if len(envs) != planner.num_episodes or len(seeds) != len(envs):
        raise ValueError(f"{len(envs)} envs and {len(seeds)} seeds for a planner of {planner.num_episodes} episodes")
    dynamics = planner.dynamics
    if on_transition is not None and not callable(getattr(dynamics, "set_params", None)):
        raise TypeError(f"{type(dynamics).__name__} has no set_params: on_transition cannot swap its weights")
    obs_np = np.stack([env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds, strict=True)])
    planner.clear_plans()
    hidden = dynamics.init_hidden(len(envs))
    starts = torch.ones(len(envs), dtype=torch.bool)
    finished_once = np.zeros(len(envs), dtype=bool)
    episode_step = np.zeros(len(envs), dtype=np.int64)  # steps taken in each env's current episode
    explore_generator = torch.Generator().manual_seed(explore_seed)
    columns: dict[str, list] = {
        name: [] for name in ("obs", "action", "next_obs", "reward", "terminated", "truncated", "episode_start")
    }
    for _ in range(steps):
        threads.tick()
        if until_first_done and finished_once.all():
            break
        obs = torch.as_tensor(obs_np, dtype=torch.float32, device=dynamics.device)
        exploring = episode_step < explore_steps
        env_actions = None if exploring.all() else planner.plan(obs, hidden)
        if exploring.any():
            unit = uniform_action(planner.action_space, len(envs), explore_generator)
            random_actions = unit_to_env_action(unit, planner.action_space)
            env_actions = (
                random_actions
                if env_actions is None
                else np.where(exploring.reshape(-1, *[1] * (random_actions.ndim - 1)), random_actions, env_actions)
            )
        results = [env.step(action) for env, action in zip(envs, env_actions, strict=True)]
        next_np = np.stack([result[0] for result in results]).astype(np.float32)
        reward = np.array([result[1] for result in results], dtype=np.float32)
        terminated = np.array([result[2] for result in results], dtype=bool)
        truncated = np.array([result[3] for result in results], dtype=bool)
        model_action = to_model_action(env_actions, planner.action_space).to(dynamics.device)
        next_obs = torch.as_tensor(next_np, device=dynamics.device)
        reward_t = torch.from_numpy(reward)
        hidden_before = hidden
        hidden = dynamics.observe(obs, model_action, hidden)
        if on_transition is not None:
            update = on_transition(
                obs, model_action, next_obs, reward_t.to(dynamics.device), starts.to(dynamics.device), hidden_before
            )
            if update is not None:
                params, hidden = update
                dynamics.set_params(params, stacked=True)
        for name, value in (
            ("obs", obs),
            ("action", model_action),
            ("next_obs", next_obs),
            ("reward", reward_t),
            ("terminated", torch.from_numpy(terminated)),
            ("truncated", torch.from_numpy(truncated)),
            ("episode_start", starts),
        ):
            columns[name].append(value.cpu())
        done = terminated | truncated
        finished_once |= done
        episode_step = np.where(done, 0, episode_step + 1)
        obs_np = next_np.copy()  # the resets below must not overwrite the recorded next_obs (shared memory)
        starts = torch.from_numpy(done)
        if done.any():
            for index in np.flatnonzero(done):
                obs_np[index] = envs[index].reset()[0]
            mask = starts.to(dynamics.device)
            hidden = torch.where(mask.unsqueeze(-1), dynamics.init_hidden(len(envs)), hidden)
            planner.clear_plans(mask)
    tasks = tuple(env.get_wrapper_attr("task") for env in envs)
    stacked = {name: torch.stack(values, dim=1) for name, values in columns.items()}
    stacked["truncated"][:, -1] |= ~stacked["terminated"][:, -1]  # the row's end cuts its last episode
    return Rollouts(
        **stacked,
        task_index=torch.arange(len(envs)),
        tasks=tasks,
    )


def first_episode_returns(rollouts: Rollouts) -> list[float]:
    """The return of each row's first episode (up to its first termination or truncation, or the row's end)."""
    done = (rollouts.terminated | rollouts.truncated).int()
    before_first_end = (done.cumsum(dim=1) - done) == 0  # (E, T): steps up to and including the first end
    return (rollouts.reward * before_first_end).sum(dim=1).tolist()


def random_episode_returns(
    family: TaskFamily, tasks: Sequence[Task], seeds: Sequence[int], max_steps: int
) -> list[float]:
    """Return of one episode of uniformly random actions per (task, seed) (env and action sampling seeded)."""
    returns = []
    for task, seed in zip(tasks, seeds, strict=True):
        with family.make_env(task) as env:
            env.reset(seed=int(seed))
            env.action_space.seed(int(seed))
            total = 0.0
            for _ in range(max_steps):
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                if terminated or truncated:
                    break
            returns.append(total)
    return returns
