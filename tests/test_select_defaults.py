"""experiments/select_defaults.py: val tasks only, the paired choice rule, overrides checked before any training."""

from __future__ import annotations

import json

import pytest
import torch

from core.settings import override
from env_runner.tasks import TaskFamily
from experiments import select_defaults as selection
from pipeline.config import defaults_for
from planning.planner import PlannerConfig


@pytest.fixture(scope="module")
def quick_selection(tmp_path_factory):
    """Two quick Pendulum candidates, one with control; records the split of every environment made."""
    out = tmp_path_factory.mktemp("selection") / "selection.json"
    touched = []
    original_make_env = TaskFamily.make_env

    def recording_make_env(self, task, seed=None):
        touched.append(task.split)
        return original_make_env(self, task, seed)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskFamily, "make_env", recording_make_env)
        record = selection.main(
            [
                "--env_name",
                "Pendulum-v1",
                "--quick",
                "--no_progress",
                "--candidate",
                '{"control": false}',
                "--candidate",
                '{"hidden_dim": 24, "planner": {"horizon": 4}}',
                "--by",
                "prediction",
                "--out",
                str(out),
            ]
        )
    torch.set_num_threads(threads)
    return out, record, touched


def test_selection_reads_train_and_val_tasks_only(quick_selection):
    _, _, touched = quick_selection
    assert set(touched) == {"train", "val"}


def test_selection_writes_every_candidates_val_scores(quick_selection):
    out, record, _ = quick_selection
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    first, second = record["candidates"]
    assert first["overrides"] == {"control": False} and first["tta_return"] is None
    assert second["tta_return"] is not None and len(second["tta_return"]["per_task"]) == 2  # quick: 2 val tasks
    for candidate in record["candidates"]:
        assert len(candidate["maml_mse"]["per_task"]) == 2 and candidate["train_s"] > 0
        assert candidate["maml_mse"]["mean"] > 0 and candidate["erm_mse"]["mean"] > 0
    assert record["defaults"]["hidden_dim"] == defaults_for("Pendulum-v1", quick=True).hidden_dim
    assert record["chosen"] in (0, 1) and record["candidates"][record["chosen"]]["tied"]


def scored(maml_mse: list[float], train_s: float, tta: list[float] | None = None) -> dict:
    def summary(values):
        return {"mean": sum(values) / len(values), "ci95": [0.0, 0.0], "per_task": values}

    return {"maml_mse": summary(maml_mse), "train_s": train_s, "tta_return": None if tta is None else summary(tta)}


def test_choice_takes_the_best_mean_and_marks_the_candidates_tied_with_it():
    best = scored([1.0, 2.0, 3.0, 4.0], train_s=100.0)
    tied = scored([1.2, 1.8, 3.3, 3.9], train_s=10.0)  # differences +-: interval contains 0
    worse = scored([1.5, 2.5, 3.5, 4.5], train_s=1.0)  # worse on every task by 0.5
    candidates = [tied, best, worse]
    assert selection.choose_candidate(candidates, "prediction") == 1
    assert [candidate["tied"] for candidate in candidates] == [True, True, False]
    assert worse["versus_best"]["mean"] == pytest.approx(0.5)


def test_choice_by_control_maximises_the_return_and_needs_it():
    low, high = scored([1.0, 1.0], 1.0, tta=[-10.0, -11.0]), scored([1.0, 1.0], 2.0, tta=[-5.0, -6.0])
    assert selection.choose_candidate([low, high], "control") == 1
    with pytest.raises(ValueError, match="tta_return"):
        selection.choose_candidate([scored([1.0], 1.0), scored([1.0], 1.0)], "control")


def test_overrides_name_an_unknown_setting_and_a_group_given_a_value():
    defaults = defaults_for("Pendulum-v1")
    changed = override(defaults, {"hidden_dim": 32, "planner": {"horizon": 7}, "eval_steps": [0, 1]})
    assert changed.hidden_dim == 32 and changed.planner == PlannerConfig(**{**vars(defaults.planner), "horizon": 7})
    assert changed.eval_steps == (0, 1)
    with pytest.raises(ValueError, match="'hiden_dim' is not a setting of PipelineConfig"):
        override(defaults, {"hiden_dim": 32})
    with pytest.raises(ValueError, match="^planner must be an object of its own settings"):
        override(defaults, {"planner": 7})
    with pytest.raises(ValueError, match="^hidden_dim must be an int >= 1, got 0"):
        override(defaults, {"hidden_dim": 0})
    with pytest.raises(ValueError, match="^planner.horizon must be an int >= 1, got 0"):
        override(defaults, {"planner": {"horizon": 0}})


def test_an_invalid_candidate_fails_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "train_world", lambda *args, **kwargs: pytest.fail("trained before checking"))
    with pytest.raises(ValueError, match="'nope' is not a setting"):
        selection.select("Pendulum-v1", [{}, {"nope": 1}], "prediction", 0, tmp_path, progress=False)
