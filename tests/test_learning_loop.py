"""The model-based loop to a sample budget: --env_steps sets the on-policy rounds, the run spends exactly the budget,
and the learning curve (val-task return against environment steps) is measured without changing training."""

from __future__ import annotations

import json

import pytest
import torch

from core.settings import SettingError
from pipeline import cli
from pipeline.acting import control_episodes
from pipeline.config import defaults_for, override
from pipeline.report.markdown import summary_markdown
from pipeline.report.summary import _summarize_learning_curve

QUICK = ["--quick", "--no_progress", "--seed", "1"]
RANDOM_STEPS = 6 * 64  # --quick: 6 train tasks x 64 random steps
ROUND_STEPS = 2 * 16  # --quick: 2 on-policy tasks x 16 steps


def quick_run(tmp_path, name: str, *flags: str) -> dict:
    out_dir = tmp_path / name
    cli.main([*QUICK, "--out_dir", str(out_dir), *flags])
    return json.loads((out_dir / "metrics.json").read_text())


def test_a_budget_of_three_rounds_trains_on_exactly_its_steps_with_a_point_per_round(tmp_path):
    budget = RANDOM_STEPS + 3 * ROUND_STEPS
    metrics = quick_run(tmp_path, "budget", "--num_epochs", "4", "--env_steps", str(budget))
    assert metrics["env_steps"] == {"random": RANDOM_STEPS, "onpolicy": 3 * ROUND_STEPS}
    assert metrics["training"]["transitions"] == budget
    curve = metrics["learning_curve"]
    # the epoch before the first round (random data only), then each round's epoch
    assert [point["epoch"] for point in curve] == [1, 2, 3, 4]
    assert [point["env_steps"] for point in curve] == [RANDOM_STEPS + r * ROUND_STEPS for r in range(4)]
    assert ["onpolicy_return" in point for point in curve] == [False, True, True, True]
    for point in curve:
        assert len(point["val_returns"]) == 2  # --quick's 2 val tasks
        assert point["val_return"] == pytest.approx(sum(point["val_returns"]) / 2)
    assert (tmp_path / "budget" / "learning_curve.png").stat().st_size > 0


def test_measuring_the_learning_curve_leaves_training_unchanged(tmp_path):
    with_curve = quick_run(tmp_path, "with")
    without = quick_run(tmp_path, "without", "--curve_tasks", "0")
    assert "val_return" in with_curve["learning_curve"][-1]
    assert all("val_return" not in point for point in without["learning_curve"])
    first, second = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False) for name in ("with", "without"))
    for name, tensor in first["model"].items():
        torch.testing.assert_close(tensor, second["model"][name], rtol=0, atol=0)
    assert with_curve["control"] == without["control"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env_steps": RANDOM_STEPS + 5}, f"env_steps must be random steps (6 x 64 = {RANDOM_STEPS}) plus a whole"),
        ({"env_steps": RANDOM_STEPS + 3 * ROUND_STEPS}, "at most --num_epochs (2) of them"),
        ({"env_steps": RANDOM_STEPS + ROUND_STEPS, "control": False}, "under --no-control"),
        ({"curve_tasks": 3}, "curve_tasks must be at most --num_val_tasks (2)"),
        ({"ceiling_episodes": 3}, "ceiling_episodes must be at most --control_episodes (2)"),
    ],
)
def test_a_budget_or_curve_the_run_cannot_honour_is_refused(changes, message):
    with pytest.raises(SettingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        override(defaults_for("Pendulum-v1", quick=True), changes)


def test_without_a_budget_the_last_onpolicy_rounds_epochs_collect():
    config = defaults_for("Pendulum-v1")
    assert config.rounds == 2 and config.budget == 40 * 400 + 2 * 8 * 200 and config.learning_curve_tasks == 5
    budget = override(config, {"env_steps": 40 * 400 + 6 * 8 * 200})
    assert budget.rounds == 6 and budget.budget == budget.env_steps
    assert override(config, {"control": False}).rounds == 0


def test_the_summary_pools_each_point_over_seeds_and_pairs_the_last_with_the_first():
    def run(seed, first, last):
        return {
            "learning_curve": [
                {"epoch": 1, "env_steps": 100, "val_return": sum(first) / 2, "val_returns": first},
                {"epoch": 2, "env_steps": 150, "onpolicy_return": -5.0 - seed, "val_return": 0, "val_returns": last},
            ]
        }

    runs = [run(0, [-10.0, -20.0], [-4.0, -6.0]), run(1, [-12.0, -16.0], [-8.0, -8.0]), run(2, [-9, -11], [-7, -3])]
    result = _summarize_learning_curve(runs)
    first, last = result["learning_curve"]
    assert first["env_steps"] == 100 and "onpolicy_return" not in first
    assert first["val_return"]["over_seeds"]["per_seed"] == [-15.0, -14.0, -10.0]
    assert last["onpolicy_return"]["over_seeds"]["per_seed"] == [-5.0, -6.0, -7.0]
    assert result["learning_curve_gain"]["over_seeds"]["per_seed"] == [10.0, 6.0, 5.0]
    assert result["learning_curve_gain"]["over_seeds"]["wins"] == 3
    table = summary_markdown({"env_name": "X", "n_seeds": 3, "seeds": [0, 1, 2], **result})
    assert "| 150 | -6.0 [" in table and "| val return, last point - first | 7.0 [" in table


def test_more_onpolicy_rows_than_train_tasks_repeat_tasks_from_reset_seeds_of_their_own(tmp_path):
    quick_run(tmp_path, "repeats", "--onpolicy_tasks", "8")  # --quick: 6 train tasks, 16-step rows, one round
    dataset = torch.load(tmp_path / "repeats" / "checkpoint.pt", weights_only=False)["dataset"]
    assert len(dataset["task_index"]) == 24 + 8  # 6 tasks x 64 random steps in 16-step rows, then the 8 rows
    onpolicy, observations = dataset["task_index"][24:], dataset["obs"][24:]
    assert sorted(set(onpolicy.tolist())) == list(range(6))  # every task once before any repeats
    repeated = [task for task in range(6) if (onpolicy == task).sum() == 2]
    assert len(repeated) == 2
    for task in repeated:
        first, second = observations[onpolicy == task]
        assert not torch.equal(first, second)


def test_the_curve_every_few_rounds_keeps_the_first_point_and_the_last_round():
    config = override(defaults_for("Pendulum-v1"), {"num_epochs": 7, "env_steps": 40 * 400 + 5 * 8 * 200})
    assert config.rounds == 5  # epochs 2..6 (0-based) collect first; epoch 1 is the last on random data alone
    every_two = override(config, {"curve_every": 2})
    assert [epoch for epoch in range(7) if every_two.measures_curve_after(epoch)] == [1, 3, 5, 6]
    assert [epoch for epoch in range(7) if config.measures_curve_after(epoch)] == [1, 2, 3, 4, 5, 6]
    assert not any(override(config, {"curve_tasks": 0}).measures_curve_after(epoch) for epoch in range(7))


def test_the_ceiling_plays_the_first_of_each_tasks_episodes_and_nothing_else_changes(tmp_path):
    both = quick_run(tmp_path, "both", "--curve_tasks", "0")
    first = quick_run(tmp_path, "first", "--curve_tasks", "0", "--ceiling_episodes", "1")
    for split in ("control", "control_ood"):
        ceiling = first[split]["true_dynamics"]
        assert [len(episodes) for episodes in ceiling["episodes"]] == [1] * len(ceiling["episodes"])
        assert ceiling["per_task"] == [episodes[0] for episodes in ceiling["episodes"]]
        others = {name: value for name, value in first[split].items() if name != "true_dynamics"}
        assert others == {name: value for name, value in both[split].items() if name != "true_dynamics"}
    config = defaults_for("Pendulum-v1", quick=True)
    tasks = [f"task {index}" for index in range(3)]
    _, all_seeds, planner_seed = control_episodes(tasks, "test", config)
    _, first_seeds, same_planner_seed = control_episodes(tasks, "test", override(config, {"control_episodes": 1}))
    assert first_seeds == all_seeds[::2] and same_planner_seed == planner_seed  # each task's first reset seed
