"""main.py --algo rl2: outputs and schema, the summary over seeds, resume, val/test separation, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.settings import SettingError, override
from env_runner.environment import make_task_family
from env_runner.tasks import TaskFamily
from meta_rl import rl2
from meta_rl.rl2 import RL2Config
from pipeline import cli as main
from pipeline.config import PipelineConfig
from pipeline.report.summary import summarize

# one thread: a resumed run repeats the uninterrupted one bit for bit, whatever else the machine runs
QUICK = ["--algo", "rl2", "--env_name", "PointNavigation-v0", "--quick", "--no_progress", "--threads", "1"]
POLICIES = {"ssm", "oracle", "random"}


def load_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Quick runs of seeds 0 and 1, recording the split of every task whose environment is made, in order."""
    torch.set_num_threads(1)
    out_dir = tmp_path_factory.mktemp("rl2")
    touched = []
    original = TaskFamily.make_env

    def recording_make_env(self, task, seed=None):
        touched.append(task.split)
        return original(self, task, seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskFamily, "make_env", recording_make_env)
        summary = main.main([*QUICK, "--seeds", "0", "1", "--out_dir", str(out_dir)])
    runs = [load_json(out_dir / f"seed_{seed}" / "metrics.json") for seed in (0, 1)]
    return out_dir, runs, summary, touched


def test_quick_rl2_run_writes_every_output_with_the_schema(quick_runs):
    out_dir, runs, _, _ = quick_runs
    seed_dir, metrics = out_dir / "seed_0", runs[0]
    for name in ("config.json", "metrics.json", "checkpoint.pt", "rl2_returns.png", "rl2_training.png"):
        assert (seed_dir / name).is_file() and (seed_dir / name).stat().st_size > 0, name
    assert {"env_name", "seed", "algo", "config", "tasks", "rl2", "rl2_val", "rl2_training", "timing"} <= metrics.keys()
    assert metrics["algo"] == "rl2" and set(metrics["tasks"]) == {"train", "val", "test", "ood"}
    episodes = metrics["config"]["rl2"]["episodes_per_trial"]
    for split, num_tasks in (("in_distribution", 3), ("ood", 3)):
        assert set(metrics["rl2"][split]) == POLICIES
        for value in metrics["rl2"][split].values():
            assert len(value["episode_returns"]) == episodes
            for episode in value["episode_returns"]:
                assert len(episode["per_task"]) == num_tasks and math.isfinite(episode["mean"])
                assert len(episode["ci95"]) == 2
    assert set(metrics["rl2_val"]) == POLICIES
    assert set(metrics["rl2_training"]) == {"ssm", "oracle"}
    assert len(metrics["rl2_training"]["ssm"]) == metrics["config"]["rl2"]["iterations"]
    assert metrics["protocol"] == {"name": "coefficients"}
    assert metrics["env_steps"] == {"random": 0, "onpolicy": metrics["rl2_training"]["ssm"][-1]["env_steps"]}
    assert metrics["env_steps"]["onpolicy"] > 0
    assert load_json(seed_dir / "config.json") == metrics["config"]
    rebuilt = PipelineConfig.from_dict(metrics["config"])
    assert (
        rebuilt.rl2 == override(rl2.RL2Config(), metrics["config"]["rl2"])  # JSON lists back to tuples
        and json.loads(json.dumps(rebuilt.to_dict())) == metrics["config"]
    )
    checkpoint = torch.load(seed_dir / "checkpoint.pt", weights_only=True)
    policy = rl2.build_policy(make_task_family("PointNavigation-v0"), "ssm", rl2.RL2Config(hidden_dim=16), oracle=True)
    policy.load_state_dict(checkpoint["policies"]["oracle"]["state_dict"])


def test_test_and_ood_tasks_are_read_only_after_training_and_val(quick_runs):
    touched = quick_runs[3]
    seed_0 = touched[: touched.index("train", touched.index("ood"))]  # the second seed starts with training again
    first_final = min(index for index, split in enumerate(seed_0) if split in ("test", "ood"))
    assert "val" in seed_0[:first_final] and "train" in seed_0[:first_final]
    assert not {"train", "val"} & set(seed_0[first_final:])


def test_summary_over_two_seeds_recomputes_from_the_per_seed_values(quick_runs):
    out_dir, runs, summary, _ = quick_runs
    assert summary == load_json(out_dir / "summary.json") and "RL²" in (out_dir / "summary.md").read_text()
    for split in ("in_distribution", "ood"):
        per_pair = {
            name: [
                [value for run in runs for value in run["rl2"][split][name]["episode_returns"][e]["per_task"]]
                for e in range(2)
            ]
            for name in POLICIES
        }
        first, second = per_pair["ssm"]
        returns = summary["rl2"][split]["ssm"]["episode_returns"]
        assert returns[1]["n"] == 6 and returns[1]["mean"] == pytest.approx(sum(second) / 6)
        assert returns[0]["per_seed"] == pytest.approx(
            [run["rl2"][split]["ssm"]["episode_returns"][0]["mean"] for run in runs]
        )
        gain = summary["rl2_paired"][split]["ssm"]["episode_2-episode_1"]
        assert gain["mean"] == pytest.approx(sum(b - a for a, b in zip(first, second, strict=True)) / 6)
        assert gain["wins"] == sum(b > a for a, b in zip(first, second, strict=True))
        assert summary["rl2_paired"][split]["ssm"]["last-first"] == gain  # two episodes: the last is the second
        last = {name: summary["rl2"][split][name]["episode_returns"][-1]["over_seeds"]["mean"] for name in POLICIES}
        beaten = [name for name in POLICIES if last[name] > last["oracle"]]
        if beaten:  # the oracle is no ceiling: no score, and the summary says which policy beat it
            assert summary["rl2_normalized_score"][split] == {
                "withheld": f"the oracle is no ceiling here: {', '.join(beaten)} returned more over seeds"
            }
            continue
        random, oracle = per_pair["random"][1], per_pair["oracle"][1]
        scores = [(r - lo) / (hi - lo) for r, lo, hi in zip(second, random, oracle, strict=True)]
        assert summary["rl2_normalized_score"][split]["ssm"]["mean"] == pytest.approx(sum(scores) / 6)
        assert summary["rl2_normalized_score"][split]["oracle"]["mean"] == pytest.approx(1.0)


def test_resume_of_an_interrupted_rl2_run_ends_with_the_same_weights(quick_runs, tmp_path, monkeypatch):
    uninterrupted = torch.load(quick_runs[0] / "seed_0" / "checkpoint.pt", weights_only=True)["policies"]
    original, calls = rl2.ppo_update, []

    def killed_in_the_oracles_second_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # quick: 2 iterations each, the memory policy first
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(rl2, "ppo_update", killed_in_the_oracles_second_iteration)
    with pytest.raises(SystemExit) as stopped:  # Ctrl-C: one line, exit status 130
        main.main([*QUICK, "--seed", "0", "--out_dir", str(tmp_path)])
    assert stopped.value.code == 130
    monkeypatch.setattr(rl2, "ppo_update", original)
    assert set(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["policies"]) == {"ssm"}
    with pytest.raises(SystemExit) as refused:  # before any work, naming the setting
        main.main([*QUICK, "--seed", "0", "--rl2.ent_coef", "0.1", "--out_dir", str(tmp_path), "--resume"])
    assert refused.value.code == 2
    main.main([*QUICK, "--seed", "0", "--out_dir", str(tmp_path), "--resume"])
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["policies"]
    for name in ("ssm", "oracle"):
        for key, value in uninterrupted[name]["state_dict"].items():
            torch.testing.assert_close(resumed[name]["state_dict"][key], value, atol=0, rtol=0, msg=f"{name} {key}")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["timing"]["resumed"] is True
    assert metrics["rl2_throughput"] is None  # its seconds count from the restart, its steps from the start


def test_resume_of_a_corrupt_rl2_checkpoint_names_the_file_and_starts_again(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="checkpoint.pt is not a readable ssm-metarl RL² checkpoint .*starts again"):
        main.main([*QUICK, "--out_dir", str(tmp_path), "--resume"])
    assert (tmp_path / "metrics.json").is_file()


def test_help_names_both_algorithms_and_the_rl2_settings(capsys):
    with pytest.raises(SystemExit):
        main.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--algo", "{mbrl,rl2}", "--rl2_memory", "--rl2.iterations", "--rl2.episodes_per_trial"):
        assert flag in text


def test_longer_trials_begin_as_the_trained_length_trials_and_add_their_later_episodes(tmp_path):
    main.main(
        ["--algo", "rl2", "--env_name", "PointNavigation-v0", "--quick", "--no_progress", "--out_dir", str(tmp_path)]
        + ["--rl2.longer_trials", "4"]
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for split in ("in_distribution", "ood"):
        for policy, value in metrics["rl2"][split].items():
            longer = metrics["rl2_longer"]["4"][split][policy]["episode_returns"]
            assert len(longer) == 4
            assert [e["per_task"] for e in longer[:2]] == [e["per_task"] for e in value["episode_returns"]]
    summary = summarize([metrics])
    gain = summary["rl2_longer"]["4"]["ood"]["ssm"]["last-first"]
    ood = metrics["rl2_longer"]["4"]["ood"]["ssm"]["episode_returns"]
    assert gain["mean"] == pytest.approx(np.mean(np.subtract(ood[3]["per_task"], ood[0]["per_task"])))


def test_a_longer_trial_must_be_longer_than_training():
    with pytest.raises(SettingError, match=r"longer_trials must be lengths above episodes_per_trial \(2\)"):
        RL2Config(longer_trials=(2, 4))
