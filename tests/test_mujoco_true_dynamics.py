"""The MuJoCo families' true dynamics (`planning.mujoco_dynamics`): every family's environment, step by step, with
each task's masses, damping, crippled motors or goal; and the planner on them is a ceiling worth the name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from env_runner.families import TASK_FAMILIES, make_task_family
from env_runner.locomotion import HALF_CHEETAH_CRIPPLED_ID, HALF_CHEETAH_DIR_ID, MujocoFamily
from planning.episode import first_episode_returns, random_episode_returns, run_episodes
from planning.planner import PlannerConfig, make_planner
from planning.true_dynamics import has_true_dynamics, true_dynamics

FAMILY_IDS = [env_id for env_id, family in TASK_FAMILIES.items() if issubclass(family, MujocoFamily)]
HOPPER_VELOCITY_CLIP = 10.0


@pytest.fixture(autouse=True)
def mujoco_log_in_a_temporary_directory(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory on model warnings (Hopper's XML raises one)."""
    monkeypatch.chdir(tmp_path)


def two_tasks(family):
    """A training task and an OOD one (two training tasks where the family has no OOD split)."""
    if family.env_id == HALF_CHEETAH_DIR_ID:
        return family.sample(2, seed=0)
    return [*family.sample(1, seed=0), *family.sample(1, seed=0, split="ood")]


def env_transitions(family, task, seed: int, steps: int) -> dict[str, np.ndarray]:
    """`steps` random-action transitions of the task's environment, reset where an episode ends."""
    rng = np.random.default_rng(seed)
    columns = {"obs": [], "action": [], "next_obs": [], "reward": []}
    with family.make_env(task) as env:
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):
            action = rng.uniform(env.action_space.low, env.action_space.high)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for name, value in zip(columns, (obs, action, next_obs, reward), strict=True):
                columns[name].append(value)
            obs = env.reset()[0] if terminated or truncated else next_obs
    return {name: np.asarray(values) for name, values in columns.items()}


def test_the_registry_gives_every_mujoco_family_to_check():
    assert len(FAMILY_IDS) == 8 and "Hopper-v5" in FAMILY_IDS  # an empty list would check nothing


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_true_dynamics_and_the_family_reward_equal_each_tasks_environment_step_by_step(env_id):
    family = make_task_family(env_id)
    tasks = two_tasks(family)
    assert has_true_dynamics(family)
    dynamics = true_dynamics(family, tasks)
    runs = [env_transitions(family, task, seed, 60) for seed, task in enumerate(tasks)]
    obs, action, next_obs, reward = (
        torch.as_tensor(np.stack([run[name] for run in runs], axis=1))  # (T, E, ·): both tasks in one batch
        for name in ("obs", "action", "next_obs", "reward")
    )
    reward_fn = family.batch_reward_fn(tasks)
    compared = 0
    for t in range(obs.shape[0]):
        predicted, hidden = dynamics.step(obs[t], action[t], dynamics.init_hidden(2))
        assert hidden.shape == (2, 0)
        exact = torch.ones(2, dtype=torch.bool)
        if env_id == "Hopper-v5":  # a velocity beyond the clip is not in the observation
            exact = (obs[t, :, 6:].abs() < HOPPER_VELOCITY_CLIP).all(dim=1)
        torch.testing.assert_close(predicted[exact], next_obs[t][exact], rtol=1e-7, atol=1e-7)
        imagined = reward_fn(obs[t][:, None], action[t][:, None], predicted[:, None])[:, 0]
        torch.testing.assert_close(imagined[exact], reward[t][exact], rtol=1e-6, atol=1e-6)
        compared += int(exact.sum())
    assert compared > 100


def test_each_episode_steps_with_its_own_tasks_model():
    family = make_task_family(HALF_CHEETAH_CRIPPLED_ID)
    tasks = family.sample(2, seed=0)
    assert tasks[0].params != tasks[1].params
    dynamics = true_dynamics(family, tasks)
    run = env_transitions(family, tasks[0], 0, 5)
    obs, action = (torch.as_tensor(run[name][4]).expand(2, -1) for name in ("obs", "action"))
    predicted, _ = dynamics.step(obs, action, dynamics.init_hidden(2))
    torch.testing.assert_close(predicted[0], torch.as_tensor(run["next_obs"][4]), rtol=1e-7, atol=1e-7)
    assert not torch.allclose(predicted[0], predicted[1])


def test_icem_on_the_true_halfcheetah_runs_forward_far_beyond_random():
    family = make_task_family("HalfCheetah-v5")
    tasks = family.sample(1, seed=0, split="test")
    config = PlannerConfig(method="icem", horizon=8, num_candidates=60, num_iterations=2)
    planner = make_planner(true_dynamics(family, tasks), family.planning_reward_fn(tasks), family.action_space, config)
    with family.make_env(tasks[0]) as env:
        planned = first_episode_returns(run_episodes([env], planner, [0], 40, until_first_done=True))[0]
    random = np.mean(random_episode_returns(family, tasks * 3, range(3), max_steps=40))
    assert planned > random + 20, (planned, random)
