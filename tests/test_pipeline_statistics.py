"""Intervals reported by the pipeline: Student-t quantiles and per-task aggregation of window errors."""

from __future__ import annotations

import math

import pytest

from pipeline.report import prediction_metrics
from pipeline.statistics import mean_and_ci95, t_quantile_975

# two-sided 95% critical values of Student's t (standard tables)
T_TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 6: 2.4469, 9: 2.2622, 20: 2.0860, 100: 1.9840}


@pytest.mark.parametrize("degrees_of_freedom, expected", T_TABLE.items())
def test_t_quantile_matches_tables(degrees_of_freedom, expected):
    tolerance = 5e-3 if degrees_of_freedom == 3 else 1e-3 if degrees_of_freedom == 4 else 2e-4
    assert t_quantile_975(degrees_of_freedom) == pytest.approx(expected, abs=tolerance)


def test_interval_of_the_mean_uses_t():
    mean, half_width = mean_and_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert half_width == pytest.approx(3.1824 * math.sqrt(5 / 3) / 2, rel=2e-3)
    assert math.isnan(mean_and_ci95([1.0])[1])


def test_prediction_intervals_are_over_task_means():
    # two tasks, three windows each: the task means are 1 and 3
    windows = [0.0, 1.0, 2.0, 3.0, 3.0, 3.0]
    errors = {"in_distribution": {"maml": {"fresh": {"0": windows}, "in_context": {"0": windows}}}}
    metrics = prediction_metrics(errors, windows_per_task=3)
    assert metrics["prediction"]["in_distribution"]["maml"]["0"] == pytest.approx(2.0)
    expected_half_width = 12.7062 * math.sqrt(2.0) / math.sqrt(2)
    assert metrics["prediction_ci95"]["in_distribution"]["maml"]["0"] == pytest.approx(expected_half_width, rel=1e-4)
