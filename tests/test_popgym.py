"""POPGym's memory tasks as families of the recurrent policy: observations flattened one-hot, a trial per episode,
every family end to end with --quick, MMER, and a clear error without the extra."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.spaces import flatten

from env_runner import popgym_families
from env_runner.families import make_task_family
from env_runner.popgym_families import POPGYM_IDS
from experiments import popgym_throughput
from meta_rl.rl2 import Trials, mmer
from pipeline import cli
from pipeline.config import defaults_for
from pipeline.report.summary import summarize

# every task the library offers at its easiest, and RepeatPrevious at every difficulty
QUICK_FAMILIES = [env_id for env_id in POPGYM_IDS if "Easy" in env_id or "RepeatPrevious" in env_id]


@pytest.mark.parametrize("env_id", ["popgym-CountRecallEasy-v0", "popgym-AutoencodeEasy-v0"])
def test_observations_reach_the_policy_flattened_one_hot_as_gymnasium_flattens_them(env_id):
    family = make_task_family(env_id)
    raw = gym.make(env_id)
    task = family.sample(1, seed=0)[0]
    with family.make_env(task) as env:
        observed, _ = env.reset(seed=3)
        expected, _ = raw.reset(seed=3)
        assert np.array_equal(observed, flatten(raw.observation_space, expected))
        for _ in range(5):
            action = env.action_space.sample()
            assert np.array_equal(env.step(action)[0], flatten(raw.observation_space, raw.step(action)[0]))
    assert family.observation_space.shape == (flatten(raw.observation_space, expected).shape[0],)
    assert not family.has_task_distribution and not family.held_out_tasks and not family.has_ood_split


def test_a_trial_is_one_episode_and_the_time_limit_never_cuts_one_short():
    assert defaults_for("popgym-RepeatPreviousHard-v0").rl2.episodes_per_trial == 1
    family = make_task_family("popgym-RepeatPreviousEasy-v0")
    with family.make_env(family.sample(1, seed=0)[0]) as env:
        env.reset(seed=0)
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
    assert terminated and not truncated and steps == env.unwrapped.max_episode_length


@pytest.mark.parametrize("env_id", QUICK_FAMILIES)
def test_every_family_runs_rl2_quick_end_to_end(env_id, tmp_path):
    cli.main(["--algo", "rl2", "--env_name", env_id, "--quick", "--no_progress", "--out_dir", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["rl2"]["in_distribution"]) == {"ssm", "random"}  # one POMDP: no task for an oracle to read
    assert -1.0 <= metrics["rl2_mmer"]["ssm"] <= 1.0  # POPGym's returns lie in [-1, 1]
    assert metrics["rl2_mmer"]["ssm"] == mmer(metrics["rl2_training"]["ssm"])
    assert metrics["rl2_parameters"]["ssm"] > 0 and metrics["rl2_throughput"]["ssm"] > 0


def test_mmer_is_the_best_iterations_mean_episodic_return():
    curve = [{"episode_returns": [-0.5, 0.1]}, {"episode_returns": [0.4, 0.2]}, {"episode_returns": [0.0, 0.1]}]
    assert mmer(curve) == pytest.approx(0.3)


def test_without_the_extra_the_error_names_it(monkeypatch):
    def missing(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(popgym_families.importlib, "import_module", missing)
    with pytest.raises(ValueError, match=r"install the popgym extra \(pip install 'ssm-metarl\[popgym\]'\)"):
        make_task_family("popgym-RepeatFirstEasy-v0")


def test_a_bandits_episode_grows_into_more_pulls_on_the_same_bandit_each_paying_its_share():
    family = make_task_family("popgym-MultiarmedBanditEasy-v0").longer_episodes(2)
    with family.make_env(family.sample(1, seed=0)[0]) as env:
        _, info = env.reset(seed=0)
        steps, truncated, rewards = 0, False, set()
        while not truncated:
            _, reward, _, truncated, step_info = env.step(env.action_space.sample())
            rewards.add(abs(reward))
            steps += 1
        assert np.array_equal(step_info["bandits"], info["bandits"])  # one bandit for the whole episode
    assert steps == 400 and min(rewards) == max(rewards) == pytest.approx(1 / 400)
    with pytest.raises(ValueError, match="popgym-RepeatPreviousEasy-v0's episodes cannot grow"):
        make_task_family("popgym-RepeatPreviousEasy-v0").longer_episodes(2)


def test_part_returns_split_each_trial_into_equal_parts_of_its_own_steps():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 1.0, 1.0, 1.0, 9.0, 9.0]])
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])  # row 1's trial is over after 4 steps
    zeros = torch.zeros(2, 6)
    trials = Trials(*[zeros] * 5, rewards, zeros.bool(), zeros.bool(), valid, zeros.long())
    assert trials.part_returns(2).tolist() == [[6.0, 15.0], [2.0, 2.0]]
    assert trials.part_returns(3).tolist() == [[3.0, 7.0, 11.0], [2.0, 1.0, 1.0]]


def test_longer_episodes_report_each_trained_length_part_on_the_trained_scale(tmp_path, capsys):
    flags = ["--algo", "rl2", "--env_name", "popgym-MultiarmedBanditEasy-v0", "--quick", "--no_progress"]
    cli.main([*flags, "--rl2.longer_episodes", "2", "--out_dir", str(tmp_path)])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for policy in ("ssm", "random"):
        parts = metrics["rl2_longer_episodes"]["2"]["in_distribution"][policy]["part_returns"]
        assert len(parts) == 2 and all(-1.0 <= value <= 1.0 for part in parts for value in part["per_task"])
    summary = summarize([metrics])["rl2_longer_episodes"]["2"]["in_distribution"]["ssm"]
    parts = metrics["rl2_longer_episodes"]["2"]["in_distribution"]["ssm"]["part_returns"]
    assert summary["last-first"]["mean"] == pytest.approx(
        np.mean(np.subtract(parts[1]["per_task"], parts[0]["per_task"]))
    )
    fixed = ["--algo", "rl2", "--env_name", "popgym-RepeatPreviousEasy-v0", "--rl2.longer_episodes", "2"]
    with pytest.raises(SystemExit):
        cli.main([*fixed, "--quick", "--out_dir", str(tmp_path / "fixed")])
    assert "--rl2.longer_episodes must be none for popgym-RepeatPreviousEasy-v0, whose episodes cannot grow" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "fixed").exists()  # refused before any work


def test_the_throughput_probe_sizes_iterations_by_full_length_episodes(tmp_path):
    out, threads = tmp_path / "throughput.json", torch.get_num_threads()
    try:  # the probe times on one thread
        result = popgym_throughput.main(["--quick", "--memories", "ssm_complex", "gru", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert json.loads(out.read_text())["rows"] == result["rows"]
    assert [row["memory"] for row in result["rows"]] == ["ssm_complex", "gru"]
    for row in result["rows"]:
        assert row["env_name"] == "popgym-RepeatPreviousEasy-v0" and row["episodes_per_trial"] == 1
        assert row["longest_iteration"] == 16 * row["episode_length"] and row["steps_per_s"] > 0
        fitting = 20 * 60 * row["steps_per_s"] / row["longest_iteration"]
        assert row["iterations_for"] == max(25, int(fitting) // 25 * 25)
