"""experiments/planner_choice.py: every planner setting on val tasks only, true dynamics and tta, the cheapest tie
with the best tta return chosen."""

from __future__ import annotations

import json

import pytest

from env_runner.tasks import TaskFamily
from experiments import planner_choice
from planning.planner import PlannerConfig


@pytest.fixture(scope="module")
def quick_choice(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("choice")
    splits, original = [], TaskFamily.make_env

    def recording_make_env(self, task, seed=None):
        splits.append(task.split)
        return original(self, task, seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskFamily, "make_env", recording_make_env)
        results = planner_choice.main(["--quick", "--no_progress", "--out_dir", str(out_dir)])
    return out_dir, results, splits


def test_every_setting_acts_on_val_tasks_only_with_the_true_dynamics_and_the_learned_model(quick_choice):
    out_dir, results, splits = quick_choice
    assert json.loads((out_dir / "planner_choice.json").read_text())["chosen"] == results["chosen"]
    assert (out_dir / "planner_choice.png").stat().st_size > 0
    assert {(s["method"], s["num_candidates"]) for s in results["settings"]} == {
        (method, count) for method in ("cem", "icem") for count in (16, 32)
    }
    for entry in results["settings"]:
        assert len(entry["tta"]["per_task"]) == len(entry["true_dynamics"]["per_task"]) == 2  # --quick: 2 val tasks
        assert entry["ceiling"] == (entry["true_dynamics"]["mean"] >= entry["tta"]["mean"])
        planner = PlannerConfig(
            method=entry["method"], num_candidates=entry["num_candidates"], num_iterations=2, horizon=5
        )  # --quick: 2 iterations
        assert entry["num_iterations"] == 2 and entry["model_steps"] == planner.samples_per_step * 5
    assert set(splits) <= {"train", "val"}


def test_the_choice_is_the_cheapest_setting_tied_with_the_best_tta_return(quick_choice):
    _, results, _ = quick_choice
    settings = results["settings"]
    best = max(settings, key=lambda entry: entry["tta"]["mean"])
    ties = [entry for entry in settings if entry["tta"]["mean"] >= best["tta"]["ci95"][0]]
    chosen = settings[results["chosen"]]
    assert chosen in ties and chosen["model_steps"] == min(entry["model_steps"] for entry in ties)
    assert [entry["chosen"] for entry in settings].count(True) == 1


def test_samples_per_step_counts_what_each_method_scores():
    assert PlannerConfig(num_candidates=100, num_iterations=3).samples_per_step == 300
    icem = PlannerConfig(method="icem", num_candidates=100, num_iterations=3)  # 10 elites, 3 kept
    assert icem.samples_per_step == 100 + 80 + 64 + 1 + 3 * 3


def test_the_grid_crosses_icem_with_each_noise_exponent_and_keeps_the_others_once():
    from pipeline.config import defaults_for

    configs = planner_choice.grid(defaults_for("Pendulum-v1"), ["cem", "icem"], [50], [10, 15], [0.5, 1.0])
    planners = [(c.planner.method, c.planner.horizon, c.planner.noise_exponent) for c in configs]
    default = defaults_for("Pendulum-v1").planner.noise_exponent
    assert default not in (0.5, 1.0) and planners == [
        ("cem", 10, default),
        ("cem", 15, default),
        ("icem", 10, 0.5),
        ("icem", 10, 1.0),
        ("icem", 15, 0.5),
        ("icem", 15, 1.0),
    ]
    assert {c.planner.num_candidates for c in configs} == {50}
