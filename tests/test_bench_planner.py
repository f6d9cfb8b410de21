"""The planner benchmark's control step is the default run's (episodes, candidates, horizon, iterations), timed
beside the bound it is measured against."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.bench_planner import control_step_against_bound
from pipeline.config import defaults_for


def test_the_control_step_is_the_default_runs_and_is_timed_against_its_bound():
    defaults = defaults_for("Pendulum-v1")
    result = control_step_against_bound(quick=True)
    assert result["episodes"] == defaults.control_tasks * defaults.control_episodes == 30
    assert result["config"] == asdict(defaults.planner)
    assert set(result["median_s"]) == {"tta", "shared", "bound", "floor", "dispatch", "reward"}
    assert result["vs_bound"]["bound"] == 1.0
    assert all(seconds > 0 for seconds in result["median_s"].values())
