"""The goal locomotion families (HalfCheetahVel, HalfCheetahDir, AntDir): rewards equal to the environments', the
same physics in every task, splits by goal, and the pipeline end to end with the learned reward."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from env_runner.families import make_task_family
from env_runner.locomotion import ANT_DIR_ID, HALF_CHEETAH_DIR_ID, HALF_CHEETAH_VEL_ID
from env_runner.tasks import OOD_MARGIN, Task, check_disjoint
from pipeline.config import defaults_for
from pipeline.data import run_header, sample_splits
from tests.test_mujoco_families import mujoco_log_in_a_temporary_directory, rollout  # noqa: F401 (autouse)

GOAL_IDS = [HALF_CHEETAH_VEL_ID, HALF_CHEETAH_DIR_ID, ANT_DIR_ID]


@pytest.fixture(scope="module")
def families():
    return {env_id: make_task_family(env_id) for env_id in GOAL_IDS}


def evaluation_tasks(family) -> list[Task]:
    """Tasks of every split the family has: the default, two training tasks and (where it exists) an OOD one."""
    ood = family.sample(1, seed=0, split="ood") if family.has_ood_split else []
    return [family.default_task(), *family.sample(2, seed=0), *ood]


@pytest.mark.parametrize("env_id", GOAL_IDS)
def test_reward_and_termination_fns_equal_the_environment_on_random_rollouts(families, env_id):
    family = families[env_id]
    for seed, task in enumerate(evaluation_tasks(family)):
        with family.make_env(task) as env:
            run = {name: torch.as_tensor(value, dtype=torch.float64) for name, value in rollout(env, seed, 120).items()}
        transition = (run["obs"], run["action"], run["next_obs"])
        torch.testing.assert_close(family.reward_fn(task)(*transition), run["reward"], rtol=1e-5, atol=1e-6)
        termination_fn = family.termination_fn(task)
        terminated = run["terminated"].bool()
        predicted = torch.zeros_like(terminated) if termination_fn is None else termination_fn(*transition)
        assert torch.equal(predicted, terminated)


@pytest.mark.parametrize("env_id", GOAL_IDS)
def test_the_batched_reward_gives_each_episode_its_own_goal(families, env_id):
    family = families[env_id]
    tasks = family.sample(2, seed=1)
    runs = []
    for seed, task in enumerate(tasks):
        with family.make_env(task) as env:
            runs.append({name: torch.as_tensor(value) for name, value in rollout(env, seed, 10).items()})
    stacked = [torch.stack([run[name] for run in runs]) for name in ("obs", "action", "next_obs")]  # (E=2, C=10, ·)
    expected = torch.stack([family.reward_fn(task)(run["obs"], run["action"], run["next_obs"]) for task, run in
                            zip(tasks, runs, strict=True)])  # fmt: skip
    torch.testing.assert_close(family.batch_reward_fn(tasks)(*stacked), expected)
    first = [part[0] for part in stacked]
    assert not torch.allclose(family.reward_fn(tasks[0])(*first), family.reward_fn(tasks[1])(*first))


@pytest.mark.parametrize("env_id", GOAL_IDS)
def test_every_task_has_the_same_physics_and_only_the_reward_differs(families, env_id):
    family = families[env_id]
    runs = []
    for task in family.sample(2, seed=3):
        with family.make_env(task) as env:
            runs.append(rollout(env, 5, 40))
    np.testing.assert_array_equal(runs[0]["next_obs"], runs[1]["next_obs"])
    assert not np.allclose(runs[0]["reward"], runs[1]["reward"])
    assert family.reward_depends_on_task


@pytest.mark.parametrize("env_id", GOAL_IDS)
def test_every_goal_env_passes_gymnasium_check_env_and_lasts_200_steps(families, env_id):
    family = families[env_id]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(family.make_env(family.sample(1, seed=0, split="val")[0]), skip_render_check=True)
    with family.make_env(family.default_task()) as env:
        run = rollout(env, 0, 200)
        assert env.spec.max_episode_steps == 200 and not run["terminated"][:199].all()


def test_halfcheetah_vel_goals_train_in_0_2_and_ood_beyond_2_by_a_tenth_of_the_range(families):
    family = families[HALF_CHEETAH_VEL_ID]
    for seed in range(10):
        splits = {split: family.sample(10, seed=seed, split=split) for split in ("train", "val", "test", "ood")}
        check_disjoint(splits)
        inside = [task.params["goal_velocity"] for split in ("train", "val", "test") for task in splits[split]]
        assert all(0.0 <= value <= 2.0 for value in inside)
        assert all(2.0 + OOD_MARGIN * 2.0 <= task.params["goal_velocity"] <= 3.0 for task in splits["ood"])


def test_ant_dir_ood_directions_lie_on_the_held_out_arc_away_from_the_training_arc(families):
    family = families[ANT_DIR_ID]
    low, high = 0.0, 1.5 * math.pi
    min_gap = OOD_MARGIN * (high - low)
    for seed in range(10):
        training = [task.params["goal_angle"] for task in family.sample(20, seed=seed)]
        ood = [task.params["goal_angle"] for task in family.sample(20, seed=seed, split="ood")]
        assert all(low <= angle <= high for angle in training)
        assert all(high + min_gap - 1e-9 <= angle <= 2 * math.pi - min_gap + 1e-9 for angle in ood)
    near_zero = Task(ANT_DIR_ID, "x", 0, {"goal_angle": 2 * math.pi - 0.01})  # 0.01 rad from the arc on the circle
    assert family.ood_margin(near_zero) < 0.01


def test_halfcheetah_dir_has_two_tasks_that_every_split_shares_and_no_ood_split(families):
    family = families[HALF_CHEETAH_DIR_ID]
    assert [task.params["goal_direction"] for task in family.sample(4, seed=9, split="test")] == [1.0, -1.0, 1.0, -1.0]
    with pytest.raises(ValueError, match="HalfCheetahDir-v0 has no out-of-distribution split"):
        family.sample(1, seed=0, split="ood")
    splits = sample_splits(family, defaults_for(HALF_CHEETAH_DIR_ID, quick=True))
    assert splits.ood == [] and splits.test[0].params == splits.train[0].params
    header = run_header(defaults_for(HALF_CHEETAH_DIR_ID, quick=True), family, splits, ["main.py"])
    assert (header["task_distribution"], header["held_out_tasks"], header["ood_split"]) == (True, False, False)


@pytest.mark.parametrize("env_id", GOAL_IDS)
def test_quick_pipeline_runs_end_to_end_with_the_learned_reward(env_id, tmp_path):
    from pipeline import cli

    cli.main(["--quick", "--no_progress", "--env_name", env_id, "--out_dir", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["reward"] == "learned"
    assert metrics["held_out_tasks"] == (env_id != HALF_CHEETAH_DIR_ID)
    assert {"tta", "memory_only", "no_tta", "oracle", "random"} <= metrics["control"].keys()
    assert all(np.isfinite(value["mean"]) for value in metrics["control"].values())
    assert ("control_ood" in metrics) == (env_id != HALF_CHEETAH_DIR_ID)
