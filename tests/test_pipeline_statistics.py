"""Pipeline statistics: intervals over tasks, paired differences, and summary.json recomputed from raw values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pipeline.statistics import episode_summary, mean_and_ci95, paired_difference
from pipeline.summary import _timing, summarize, summary_markdown


def test_interval_of_the_mean_uses_student_t():
    values = [1.0, 2.0, 4.0, 7.0]
    mean, (low, high) = mean_and_ci95(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2.0
    assert mean == pytest.approx(3.5) and low == pytest.approx(3.5 - half) and high == pytest.approx(3.5 + half)
    assert all(math.isnan(bound) for bound in mean_and_ci95([1.0])[1])


def test_control_per_task_values_average_a_tasks_episodes_first():
    result = episode_summary([[1.0, 3.0], [10.0, 10.0]])
    assert result["per_task"] == [2.0, 10.0] and result["episodes"] == [[1.0, 3.0], [10.0, 10.0]]
    assert result["mean"] == pytest.approx(6.0)


def test_paired_difference_counts_wins_and_losses_per_pair():
    result = paired_difference([3.0, 1.0, 5.0], [1.0, 2.0, 5.0])
    assert result["mean"] == pytest.approx(1.0 / 3.0) and (result["wins"], result["losses"], result["n"]) == (1, 1, 3)


def _run(seed: int, tta: list[float], no_tta: list[float], maml: list[float], erm: list[float]) -> dict:
    def section(per_task):
        return {"per_task": per_task, "mean": float(np.mean(per_task)), "ci95": list(mean_and_ci95(per_task)[1])}

    control = {
        name: section(values)
        for name, values in (
            ("tta", tta),
            ("memory_only", no_tta),
            ("no_tta", no_tta),
            ("random", [-10.0] * len(tta)),
            ("true_dynamics", [10.0] * len(tta)),
        )
    }
    return {
        "env_name": "Toy-v0",
        "seed": seed,
        "timing": {"total_s": 1.0},
        "prediction": {"in_distribution": {"maml": {"1": section(maml)}, "erm": {"1": section(erm)}}},
        "control": control,
    }


def test_summary_statistics_are_recomputable_from_the_per_seed_raw_values():
    runs = [
        _run(0, [5.0, 0.0], [1.0, 0.0], [0.1, 0.2], [0.3, 0.1]),
        _run(1, [8.0, 2.0], [2.0, 4.0], [0.2, 0.2], [0.4, 0.5]),
    ]
    result = summarize(runs)
    pooled_tta = [5.0, 0.0, 8.0, 2.0]
    assert result["control"]["tta"]["mean"] == pytest.approx(np.mean(pooled_tta))
    assert result["control"]["tta"]["ci95"] == pytest.approx(list(mean_and_ci95(pooled_tta)[1]))
    assert result["control"]["tta"]["per_seed"] == pytest.approx([2.5, 5.0])
    paired = result["control_paired"]["tta-no_tta"]
    assert paired["mean"] == pytest.approx(np.mean([4.0, 0.0, 6.0, -2.0]))
    assert (paired["wins"], paired["losses"], paired["n"]) == (2, 1, 4)
    prediction = result["prediction_paired"]["in_distribution"]["maml-erm"]["1"]
    assert prediction["mean"] == pytest.approx(np.mean([-0.2, 0.1, -0.2, -0.3]))
    assert (prediction["wins"], prediction["losses"]) == (3, 1)  # lower MSE wins
    scores = [(r + 10.0) / 20.0 for r in pooled_tta]
    assert result["normalized_score"]["tta"]["mean"] == pytest.approx(np.mean(scores))


RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.parametrize("family", sorted(path.name for path in RESULTS.iterdir() if (path / "summary.json").is_file()))
def test_committed_summaries_are_recomputed_from_the_committed_per_seed_metrics(family):
    summary = json.loads((RESULTS / family / "summary.json").read_text())
    runs = [json.loads((RESULTS / family / f"seed_{seed}_metrics.json").read_text()) for seed in summary["seeds"]]
    recomputed = json.loads(json.dumps(summarize(runs)))
    assert recomputed == summary


def test_summary_times_every_seed_and_averages_each_stage():
    pipeline_runs = [
        {**_run(seed, [1.0], [1.0], [0.1], [0.1]), "timing": {"total_s": total, "stages": {"train_s": train}}}
        for seed, total, train in ((0, 10.0, 4.0), (1, 20.0, 8.0))
    ]
    timing = summarize(pipeline_runs)["timing"]
    assert timing["per_seed_s"] == [10.0, 20.0] and timing["total_s"] == 30.0
    assert timing["mean_stage_s"] == {"train": 6.0}
    assert "Time per seed: 10 s, 20 s (mean by stage: train 6 s)" in summary_markdown(summarize(pipeline_runs))
    nested = [{"timing": {"total_s": 3.0, "train_s": {"ssm": 1.0, "gru": 2.0}, "evaluate_s": 0.5}}]
    assert _timing(nested)["mean_stage_s"] == {"train ssm": 1.0, "train gru": 2.0, "evaluate": 0.5}
