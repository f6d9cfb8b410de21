"""experiments/sample_cost.py: the model-based val return at several data budgets beside RL²'s val curve."""

from __future__ import annotations

import json
import shutil

import pytest

from experiments import sample_cost
from pipeline import cli


def test_quick_sample_cost_reads_both_methods_against_their_environment_steps(tmp_path):
    cli.main(["--algo", "rl2", "--quick", "--no_progress", "--env_name", "PointNavigation-v0", "--seeds", "0", "1",
              "--out_dir", str(tmp_path / "rl2_runs")])  # fmt: skip
    published = tmp_path / "rl2"
    published.mkdir()
    for seed in (0, 1):
        shutil.copy(tmp_path / "rl2_runs" / f"seed_{seed}" / "metrics.json", published / f"seed_{seed}_metrics.json")
    flags = ["--steps_per_task", "16", "48", "--seeds", "0", "1", "--rl2", str(published), "--quick", "--no_progress"]
    result = sample_cost.main(["--env_name", "PointNavigation-v0", *flags, "--out", str(tmp_path / "out")])
    small, large = result["model_based"]
    assert small["env_steps"][0] < large["env_steps"][0]  # 6 train tasks x (16 or 48) random steps + on-policy rows
    assert large["env_steps"][0] - small["env_steps"][0] == 6 * (48 - 16)
    assert len(small["tta_return"]["per_seed"]) == 2
    curve = result["rl2"]
    assert curve["policy"] == "ssm" and [episode["episode"] for episode in curve["episode_returns"]] == [1, 2]
    assert len(curve["env_steps"]) == len(curve["episode_returns"][0]["mean"]) >= 1
    assert (tmp_path / "out" / "sample_cost.png").is_file()
    assert json.loads((tmp_path / "out" / "sample_cost.json").read_text())["seeds"] == [0, 1]
    assert result["provenance"]["argv"][1:3] == ["--env_name", "PointNavigation-v0"]  # and the code's commit
    second_seed = sample_cost.rl2_curve(published, [1])["episode_returns"][0]["per_seed"]
    assert second_seed == [curve["episode_returns"][0]["per_seed"][1]]
    with pytest.raises(ValueError, match=r"holds seeds \[0, 1\], not \[2\]"):
        sample_cost.rl2_curve(published, [0, 1, 2])


def test_a_budget_that_does_not_split_into_training_rows_is_refused(capsys):
    with pytest.raises(SystemExit):
        sample_cost.main(["--env_name", "PointNavigation-v0", "--steps_per_task", "20", "--quick", "--out", "unused"])
    assert "--steps_per_task 20" in capsys.readouterr().err
