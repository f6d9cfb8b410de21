"""The verdict rule: five seeds, the t and bootstrap intervals on one side, Holm over the table; and the statistics
it reads: errors as geometric means and ratios on the log scale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.report.statistics import geometric_pooled, mean_and_ci95, paired_pooled, pooled, ratio_pooled
from pipeline.report.verdicts import MIN_SEEDS, holm, verdicts


def claim(per_seed: list[float], bootstrap: list[float] | None = None) -> dict:
    """A paired difference over seeds as summary.json holds it, from the seeds' tasks (two per seed)."""
    return paired_pooled([[value - 1.0, value + 1.0] for value in per_seed], [[0.0, 0.0] for _ in per_seed], True) | (
        {} if bootstrap is None else {"bootstrap_ci95": bootstrap}
    )


def test_holm_matches_the_step_down_adjustment_worked_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to the running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_a_clear_difference_over_five_seeds_is_established_and_its_p_is_scipys_t_test():
    seeds = [4.0, 5.0, 6.0, 5.5, 4.5]
    (result,) = verdicts([(claim(seeds), 1.0)])
    assert result["verdict"] == "established"
    assert result["p"] == pytest.approx(stats.ttest_1samp(seeds, 0.0).pvalue) and result["p_holm"] == result["p"]
    (worse,) = verdicts([(claim([-s for s in seeds]), 1.0)])
    assert worse["verdict"] == "reversed"
    (lower_is_better,) = verdicts([(claim([-s for s in seeds]), -1.0)])
    assert lower_is_better["verdict"] == "established"


def test_the_t_interval_and_the_bootstrap_must_agree():
    seeds = [4.0, 5.0, 6.0, 5.5, 4.5]
    (disagree,) = verdicts([(claim(seeds, bootstrap=[-0.5, 9.0]), 1.0)])
    assert disagree["verdict"] == "not established"
    assert disagree["ci95"][0] > 0 and disagree["p"] < 0.05  # the t interval alone would have said established


def test_fewer_than_five_seeds_get_no_verdict_and_no_place_in_the_correction():
    few = claim([4.0, 5.0, 6.0, 5.0][: MIN_SEEDS - 1])
    one = claim([5.0])
    results = verdicts([(few, 1.0), (one, 1.0), (claim([4.0, 5.0, 6.0, 5.5, 4.5]), 1.0)])
    assert [r["verdict"] for r in results] == ["too few seeds", "too few seeds", "established"]
    assert results[0]["p_holm"] is None and results[1]["ci95"] is None
    assert results[2]["p_holm"] == results[2]["p"]  # a family of one claim: nothing to correct


def test_holm_takes_the_verdict_from_a_claim_that_passes_alone():
    marginal = claim([0.2, 1.9, 0.4, 1.6, 0.9])
    (alone,) = verdicts([(marginal, 1.0)])
    assert alone["verdict"] == "established" and 0.01 < alone["p"] < 0.05
    noise = [claim([-1.0, 1.2, -0.5, 0.6, 0.1]) for _ in range(4)]
    together = verdicts([(marginal, 1.0)] + [(entry, 1.0) for entry in noise])
    assert together[0]["p"] == alone["p"] and together[0]["p_holm"] > 0.05
    assert together[0]["verdict"] == "not established"


def test_errors_pool_as_geometric_means_whose_intervals_stay_positive():
    errors = [[0.01, 0.02], [0.015, 0.03], [5.0, 9.0]]  # one seed far off: a t interval of the means goes below 0
    assert mean_and_ci95([np.mean(seed) for seed in errors])[1][0] < 0
    result = geometric_pooled(errors)
    seed_means = [math.exp(np.mean(np.log(seed))) for seed in errors]
    assert result["over_seeds"]["per_seed"] == pytest.approx(seed_means)
    assert result["over_seeds"]["mean"] == pytest.approx(math.exp(np.mean(np.log(seed_means))))
    assert 0 < result["over_seeds"]["ci95"][0] < result["over_seeds"]["mean"] < result["over_seeds"]["ci95"][1]
    assert all(bound > 0 for bound in result["bootstrap_ci95"]) and result["scale"] == "geometric"


def test_error_ratios_are_the_log_ratio_paired_by_hand_and_decided_against_one():
    a = [[0.08, 0.09], [0.05, 0.06], [0.07, 0.07], [0.10, 0.08], [0.06, 0.05]]
    b = [[0.10, 0.11], [0.07, 0.07], [0.09, 0.10], [0.12, 0.11], [0.08, 0.07]]
    result = ratio_pooled(a, b)
    log_ratios = [np.mean(np.log(np.array(x) / np.array(y))) for x, y in zip(a, b, strict=True)]
    mean = np.mean(log_ratios)
    half = stats.t.ppf(0.975, 4) * np.std(log_ratios, ddof=1) / math.sqrt(5)
    assert result["over_seeds"]["mean"] == pytest.approx(math.exp(mean))
    assert result["over_seeds"]["ci95"] == pytest.approx([math.exp(mean - half), math.exp(mean + half)])
    assert result["wins"] == 10 and result["scale"] == "ratio"  # a win: a lower error
    (decided,) = verdicts([(result, -1.0)])
    assert decided["verdict"] == "established" and decided["p"] == pytest.approx(
        stats.ttest_1samp(log_ratios, 0).pvalue
    )
    (flipped,) = verdicts([(ratio_pooled(b, a), -1.0)])
    assert flipped["verdict"] == "reversed"


def test_a_ratio_needs_positive_errors():
    with pytest.raises(ValueError, match="positive values"):
        geometric_pooled([[0.1, 0.0]])


def test_a_t_interval_that_crosses_zero_where_no_value_does_gives_way_to_the_bootstrap():
    returns = [[-250.0, -200.0], [-10.0, -12.0], [-5.0, -7.0]]  # every return negative; one seed far below
    assert mean_and_ci95([-225.0, -11.0, -6.0])[1][1] > 0  # the t interval over seeds leaves the possible range
    result = pooled(returns, sign_bounded=True)
    assert result["over_seeds"]["ci95"] == result["bootstrap_ci95"] and result["over_seeds"]["ci95"][1] <= -6.0
    assert "interval" in result["over_seeds"]
    assert mean_and_ci95([v for seed in returns for v in seed])[1][1] > 0  # over the pairs too
    assert result["interval"] and -250.0 <= result["ci95"][0] < result["ci95"][1] <= -5.0
    mixed = pooled(
        [[-250.0, 5.0], [-10.0, -12.0], [-5.0, -7.0]], sign_bounded=True
    )  # a positive value: 0 is possible, t stays
    assert "interval" not in mixed["over_seeds"]


def test_geometric_means_keep_the_log_scale_t_interval_even_where_every_error_is_below_one():
    errors = [[0.01, 0.02], [0.5, 0.9], [0.03, 0.04]]  # every log negative: no sign bound on the log scale
    result = geometric_pooled(errors)
    logs = [np.mean(np.log(seed)) for seed in errors]
    assert result["over_seeds"]["ci95"] == pytest.approx([math.exp(b) for b in mean_and_ci95(logs)[1]])
    assert "interval" not in result["over_seeds"]
