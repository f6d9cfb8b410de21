"""Model-based TTA against RL²: the comparison table from per-seed metrics of the same seeds and tasks."""

from __future__ import annotations

import json

import pytest

from pipeline.report.comparison import common_seeds, compare, comparison_markdown, write_comparison
from pipeline.report.pages import refresh_page

TASKS = {"test": [{"params": {"goal_x": 0.1 * i}} for i in range(3)], "ood": [{"params": {"goal_x": 0.9}}]}


def mbrl_run(seed: int, tta: list[float], random: list[float]) -> dict:
    control = {"tta": {"per_task": tta}, "random": {"per_task": random}}
    return {
        "env_name": "PointNavigation-v0",
        "seed": seed,
        "config": {"reward": "learned"},
        "tasks": TASKS,
        "control": control,
        "env_steps": {"random": 1000, "onpolicy": 200},
    }


def rl2_run(seed: int, first: list[float], second: list[float]) -> dict:
    episodes = [{"per_task": first + [0.0, 0.0]}, {"per_task": second + [0.0, 0.0]}]  # two tasks more than the planner
    return {
        "env_name": "PointNavigation-v0",
        "seed": seed,
        "algo": "rl2",
        "config": {"rl2_memory": "ssm"},
        "tasks": TASKS,
        "rl2": {"in_distribution": {"ssm": {"episode_returns": episodes}}},
        "env_steps": {"random": 0, "onpolicy": 12000},
    }


def test_tta_and_rl2_are_paired_within_each_seed_on_the_tasks_the_planner_ran():
    mbrl = [mbrl_run(0, [-3.0, -4.0, -5.0], [-50.0] * 3), mbrl_run(1, [-2.0, -2.0, -2.0], [-40.0] * 3)]
    rl2 = [rl2_run(0, [-10.0, -10.0, -10.0], [-6.0] * 3), rl2_run(1, [-8.0, -8.0, -8.0], [-4.0] * 3)]
    result = compare(mbrl, rl2)
    first = result["paired"]["test"]["tta - RL² ssm episode 1"]
    assert first["over_seeds"]["per_seed"] == [6.0, 6.0] and first["over_seeds"]["wins"] == 2
    assert result["paired"]["test"]["tta - RL² ssm episode 2"]["over_seeds"]["per_seed"] == [2.0, 2.0]
    assert result["rows"]["RL² ssm, episode 1"]["test"]["per_seed"] == [-10.0, -8.0]
    assert result["env_steps"] == {"model-based": [1200, 1200], "RL² ssm": [12000, 12000]}
    assert result["env_steps_ratio"] == pytest.approx(0.1)
    assert "ood" not in result["paired"]  # RL² was not evaluated on OOD tasks here
    markdown = comparison_markdown(result)
    assert "| model-based tta | -3.0 [" in markdown and "trained on 0.100 of RL²'s steps" in markdown


def test_runs_of_other_seeds_or_tasks_are_refused():
    mbrl = [mbrl_run(0, [-3.0] * 3, [-50.0] * 3)]
    with pytest.raises(ValueError, match="must be of the same seeds"):
        compare(mbrl, [rl2_run(1, [-10.0] * 3, [-6.0] * 3)])
    with pytest.raises(ValueError, match="share no seed"):
        common_seeds(mbrl, [rl2_run(1, [-10.0] * 3, [-6.0] * 3)])
    kept = common_seeds([*mbrl, mbrl_run(1, [-3.0] * 3, [-50.0] * 3)], [rl2_run(1, [-9.0] * 3, [-6.0] * 3)])
    assert [[run["seed"] for run in runs] for runs in kept] == [[1], [1]]
    other_tasks = rl2_run(0, [-10.0] * 3, [-6.0] * 3)
    other_tasks["tasks"] = {**TASKS, "test": TASKS["test"][::-1]}
    with pytest.raises(ValueError, match="seed 0: the two runs' test tasks differ"):
        compare(mbrl, [other_tasks])
    with pytest.raises(ValueError, match="--mbrl must hold model-based runs"):
        compare([rl2_run(0, [-10.0] * 3, [-6.0] * 3)], [rl2_run(0, [-10.0] * 3, [-6.0] * 3)])


def test_the_readme_block_of_a_comparison_renders_its_markdown(tmp_path):
    for name, run in (("mbrl", mbrl_run(0, [-3.0] * 3, [-50.0] * 3)), ("rl2", rl2_run(0, [-9.0] * 3, [-6.0] * 3))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "seed_0_metrics.json").write_text(json.dumps(run))
    result = write_comparison(tmp_path / "mbrl", tmp_path / "rl2", tmp_path / "out")
    assert result["sources"] == {"mbrl": "../mbrl", "rl2": "../rl2"}  # not this machine's folders
    text = "<!-- results: out/comparison.json -->\nold\n<!-- end results -->"
    assert comparison_markdown(result) in refresh_page(text, tmp_path)
