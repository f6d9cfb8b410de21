"""Pipeline statistics: intervals over tasks, paired differences, and summary.json recomputed from raw values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pipeline.report import statistics
from pipeline.report.markdown import summary_markdown
from pipeline.report.statistics import episode_summary, mean_and_ci95, paired_difference, percentile_ci95
from pipeline.report.summary import _timing, summarize


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
        "config": {"seed": seed},
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
    assert mean_and_ci95(pooled_tta)[1][0] < 0 <= min(pooled_tta)  # the t interval leaves the values' sign ...
    assert result["control"]["tta"]["ci95"] == pytest.approx(percentile_ci95(pooled_tta))  # ... so: the bootstrap's
    assert result["control"]["tta"]["per_seed"] == pytest.approx([2.5, 5.0])
    paired = result["control_paired"]["tta-no_tta"]
    assert paired["mean"] == pytest.approx(np.mean([4.0, 0.0, 6.0, -2.0]))
    assert (paired["wins"], paired["losses"], paired["n"]) == (2, 1, 4)
    prediction = result["prediction_paired"]["in_distribution"]["maml/erm"]["1"]
    ratios = [0.1 / 0.3, 0.2 / 0.1, 0.2 / 0.4, 0.2 / 0.5]  # errors compared as ratios, on the log scale
    assert prediction["mean"] == pytest.approx(np.exp(np.mean(np.log(ratios))))
    assert (prediction["wins"], prediction["losses"]) == (3, 1)  # lower MSE wins
    maml = result["prediction"]["in_distribution"]["maml"]["1"]
    assert maml["per_seed"] == pytest.approx([np.sqrt(0.1 * 0.2), 0.2])  # geometric means
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
    assert "resumed_seeds" not in timing and "Resumed" not in summary_markdown(summarize(pipeline_runs))
    nested = [{"seed": 0, "timing": {"total_s": 3.0, "train_s": {"ssm": 1.0, "gru": 2.0}, "evaluate_s": 0.5}}]
    assert _timing(nested)["mean_stage_s"] == {"train ssm": 1.0, "train gru": 2.0, "evaluate": 0.5}


def test_the_heading_counts_seeds_and_one_seed_claims_no_interval_over_seeds():
    one = summary_markdown(summarize([_run(3, [1.0], [1.0], [0.1], [0.1])]))
    assert ": 1 seed (3)" in one and "One seed, so no interval over seeds" in one and "[95% CI] over the" not in one
    two = summary_markdown(summarize([_run(seed, [1.0], [1.0], [0.1], [0.1]) for seed in (0, 1)]))
    assert ": 2 seeds (0, 1)" in two and "Mean [95% CI] over the 2 seeds:" in two


def test_the_summary_names_the_seeds_whose_time_counts_from_a_restart():
    runs = [
        {**_run(seed, [1.0], [1.0], [0.1], [0.1]), "timing": {"total_s": 10.0, "stages": {}, "resumed": seed == 1}}
        for seed in (0, 1, 2)
    ]
    assert summarize(runs)["timing"]["resumed_seeds"] == [1]
    assert "Resumed from a checkpoint (their seconds count from the restart): seed 1" in summary_markdown(
        summarize(runs)
    )
    rl2 = [{"seed": 4, "timing": {"total_s": 3.0, "train_s": {"ssm": 1.0}, "evaluate_s": 0.5, "resumed": True}}]
    assert _timing(rl2) == {
        "total_s": 3.0,
        "per_seed_s": [3.0],
        "mean_stage_s": {"train ssm": 1.0, "evaluate": 0.5},
        "resumed_seeds": [4],
    }


# ----------------------------------------------------------------------------- the training run as the unit
def test_over_seeds_is_a_student_t_interval_over_the_seed_means():
    per_seed = [[1.0, 3.0], [2.0, 6.0, 7.0], [10.0]]
    result = statistics.over_seeds(per_seed)
    means = [2.0, 5.0, 10.0]
    half = stats.t.ppf(0.975, 2) * np.std(means, ddof=1) / math.sqrt(3)
    assert result["per_seed"] == pytest.approx(means) and result["n"] == 3
    assert result["mean"] == pytest.approx(np.mean(means))
    assert result["ci95"] == pytest.approx([np.mean(means) - half, np.mean(means) + half])
    assert statistics.over_seeds([[1.0, 2.0, 3.0]])["ci95"] is None  # one seed: no interval


def naive_two_level_bootstrap(per_seed, resamples, rng):
    means = []
    for _ in range(resamples):
        seeds = rng.integers(0, len(per_seed), len(per_seed))
        means.append(np.mean([np.mean(rng.choice(per_seed[s], len(per_seed[s]))) for s in seeds]))
    return np.percentile(means, [2.5, 97.5])


def test_the_two_level_bootstrap_matches_a_plain_loop_over_seeds_then_tasks():
    rng = np.random.default_rng(1)
    per_seed = [list(rng.normal(mu, 3.0, size)) for mu, size in ((0.0, 10), (5.0, 10), (2.0, 7), (-1.0, 12))]
    low, high = statistics.bootstrap_ci95(per_seed)
    reference = naive_two_level_bootstrap(per_seed, 4000, np.random.default_rng(7))
    assert low == pytest.approx(reference[0], abs=0.35) and high == pytest.approx(reference[1], abs=0.35)
    assert statistics.bootstrap_ci95(per_seed[:1]) is None


def test_the_bootstrap_keeps_the_seed_level_variation_that_pooled_pairs_lose():
    # three seeds far apart, tasks within a seed alike: pairs look precise, seeds do not
    per_seed = [[0.0 + 0.01 * t for t in range(10)], [10.0 + 0.01 * t for t in range(10)], [20.0] * 10]
    pooled = statistics.pooled(per_seed)
    assert pooled["ci95"][1] - pooled["ci95"][0] < pooled["over_seeds"]["ci95"][1] - pooled["over_seeds"]["ci95"][0]
    low, high = pooled["bootstrap_ci95"]
    assert low < 5.0 and high > 15.0


def test_paired_differences_count_the_seeds_won_and_lost():
    a = [[5.0, 0.0], [8.0, 2.0], [0.0, 0.0]]
    b = [[1.0, 0.0], [2.0, 4.0], [1.0, 1.0]]
    result = statistics.paired_pooled(a, b, higher_is_better=True)
    assert result["over_seeds"]["per_seed"] == pytest.approx([2.0, 2.0, -1.0])
    assert (result["over_seeds"]["wins"], result["over_seeds"]["losses"]) == (2, 1)
    lower = statistics.paired_pooled(a, b, higher_is_better=False)
    assert (lower["over_seeds"]["wins"], lower["over_seeds"]["losses"]) == (1, 2)


def test_summary_refuses_runs_whose_configs_differ_beyond_the_seed():
    runs = [_run(0, [1.0], [1.0], [0.1], [0.1]), _run(1, [1.0], [1.0], [0.1], [0.1])]
    runs[0]["config"] = {"seed": 0}
    runs[1]["config"] = {"seed": 1, "inner_lr": 0.3}
    with pytest.raises(ValueError, match=r"cannot pool seed 1 with seed 0: their configs differ \(inner_lr: 0.05"):
        summarize(runs)
    runs[1]["config"] = {"seed": 1}
    assert summarize(runs)["commits"] == ["unknown"]


def test_summary_records_the_commits_and_warns_when_they_differ():
    runs = [_run(seed, [1.0], [1.0], [0.1], [0.1]) for seed in (0, 1)]
    runs[0]["provenance"] = {"git_commit": "abc", "git_dirty": False}
    runs[1]["provenance"] = {"git_commit": "def", "git_dirty": True}
    with pytest.warns(UserWarning, match="several commits"):
        result = summarize(runs)
    assert result["commits"] == ["abc", "def-dirty"] and "2 commits" in result["mixed_commits"]


def test_normalized_scores_place_each_task_between_the_seeds_mean_references():
    run = _run(0, [5.0, -10.0], [1.0, -10.0], [0.1, 0.2], [0.3, 0.1])
    run["control"]["true_dynamics"]["per_task"] = [10.0, -10.0]  # the second task: random == true dynamics
    result = summarize([run])
    score = result["normalized_score"]["tta"]  # references: random -10, true dynamics 0 (the seed's means)
    assert score["n"] == 2 and score["excluded_seeds"] == 0
    assert score["per_seed"] == pytest.approx([np.mean([(5.0 + 10.0) / 10.0, 0.0])])


def test_a_seed_whose_mean_references_tie_has_no_normalized_score_and_is_counted():
    run = _run(0, [5.0, -10.0], [1.0, -10.0], [0.1, 0.2], [0.3, 0.1])
    run["control"]["true_dynamics"]["per_task"] = [-10.0, -10.0]
    run["control"]["tta"]["per_task"] = [-10.0, -12.0]  # below the tied references, so true dynamics is no ceiling
    run["control"]["memory_only"]["per_task"] = run["control"]["no_tta"]["per_task"] = [-11.0, -12.0]
    result = summarize([run])
    assert result["normalized_score"]["tta"]["n"] == 0 and result["normalized_score"]["tta"]["excluded_seeds"] == 1
    assert "no seed's references have a range; 1 excluded" in summary_markdown(result)


def test_an_adapted_error_that_diverged_is_left_out_of_means_and_ratios_and_counted():
    runs = [_run(seed, [1.0, 2.0], [1.0, 1.0], [0.1, 0.2], [0.3, 0.1]) for seed in (0, 1)]
    for run in runs:
        for learner, k0 in (("maml", [0.2, 0.2]), ("erm", [0.3, 0.2])):
            run["prediction"]["in_distribution"][learner]["0"] = {"per_task": k0}
    runs[1]["prediction"]["in_distribution"]["maml"]["1"]["per_task"] = [0.1, 311967.0]  # Meta-SGD blown up
    result = summarize(runs)
    maml = result["prediction"]["in_distribution"]["maml"]["1"]
    assert maml["diverged"] == 1 and maml["n"] == 3
    assert maml["per_seed"] == pytest.approx([np.sqrt(0.1 * 0.2), 0.1])
    ratio = result["prediction_paired"]["in_distribution"]["maml/erm"]["1"]
    assert ratio["diverged"] == 1 and ratio["n"] == 3  # the pair is left out on both sides
    assert "diverged" not in result["prediction"]["in_distribution"]["erm"]["1"]
    assert "1 diverged left out" in summary_markdown(result)


def test_no_normalized_score_where_a_condition_returns_more_than_the_true_dynamics():
    run = _run(0, [12.0, 11.0], [1.0, 0.0], [0.1, 0.2], [0.3, 0.1])  # tta above true_dynamics (10) on average
    result = summarize([run])
    assert set(result["normalized_score"]) == {"withheld"}
    assert "tta returned more" in result["normalized_score"]["withheld"]
    assert "No normalized score: true_dynamics is not a ceiling here: tta" in summary_markdown(result)


def test_the_summary_lists_the_fine_tuning_each_seed_chose_on_val():
    runs = [_run(seed, [1.0], [1.0], [0.1], [0.1]) for seed in (0, 1)]
    runs[0]["prediction_settings"] = {"erm_optimizer": "none", "erm_learning_rate": 0.0}
    runs[1]["prediction_settings"] = {"erm_optimizer": "adam", "erm_learning_rate": 0.001}
    for run, oracle in zip(runs, (("sgd", 0.05), ("none", 0.0)), strict=True):
        run["prediction_settings"] |= {"oracle_optimizer": oracle[0], "oracle_learning_rate": oracle[1]}
    result = summarize(runs)
    assert result["fine_tuning"] == {"erm": ["none 0", "adam 0.001"], "oracle": ["sgd 0.05", "none 0"]}
    assert "erm: none 0, adam 0.001; oracle: sgd 0.05, none 0" in summary_markdown(result)


def _rl2_run(seed: int, oracle_last: list[float], oracle_val: list[float]) -> dict:
    episodes = {"ssm": [[-8.0, -6.0], [-5.0, -4.0]], "oracle": [oracle_last, oracle_last], "random": [[-10.0] * 2] * 2}
    return {
        "env_name": "Toy-v0",
        "seed": seed,
        "algo": "rl2",
        "config": {"seed": seed},
        "timing": {"total_s": 1.0},
        "rl2": {"ood": {name: {"episode_returns": [{"per_task": e} for e in by_e]} for name, by_e in episodes.items()}},
        "rl2_training": {
            "ssm": [{"iteration": 1, "val_returns": [-9.0]}],
            "oracle": [{"iteration": i + 1, "val_returns": [v]} for i, v in enumerate(oracle_val)],
        },
    }


def test_rl2_scores_leave_out_the_seeds_whose_oracle_collapsed_and_say_so():
    runs = [
        _rl2_run(0, [0.0, 0.0], [-10.0, -1.0, -2.0, -1.5]),
        _rl2_run(1, [-9.0, -9.0], [-10.0, -1.0, -8.0, -9.0]),  # fell from -1 to -9 and stayed: collapsed
    ]
    result = summarize(runs)
    assert result["rl2_collapsed"] == {"ssm": [], "oracle": [1]}
    scores = result["rl2_normalized_score"]["ood"]
    assert scores["excluded_collapsed_oracle_seeds"] == 1
    assert scores["ssm"]["per_seed"] == pytest.approx([(-4.5 + 10.0) / 10.0])  # seed 0 alone, oracle 0, random -10
    text = summary_markdown(result)
    assert "leave out 1 seed(s) whose oracle training collapsed" in text and "oracle: seed 1" in text
