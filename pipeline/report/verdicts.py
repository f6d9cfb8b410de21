"""The one rule by which every table of results calls a paired difference established.

A claim is a paired difference over seeds (`pipeline.report.statistics.paired_pooled`, or `ratio_pooled` for
errors compared as a ratio) with the side that counts as better (+1: a higher return; -1: a lower error or ratio).
Within one table of claims:

    "established"      at least MIN_SEEDS seeds; the Student-t interval over seeds and the two-level bootstrap
                       interval both exclude no-difference (0, or a ratio of 1) on the better side; and the
                       t-test's p-value over seeds stays below LEVEL after Holm's correction over the table's
                       claims that have MIN_SEEDS seeds
    "reversed"         the same on the worse side
    "not established"  at least MIN_SEEDS seeds, and any of the three fails
    "too few seeds"    fewer than MIN_SEEDS seeds (one seed included): no verdict, the figures stay beside it

    verdicts([(claim, better), ...]) -> [{"verdict", "mean", "ci95", "bootstrap_ci95", "p", "p_holm", "n_seeds"}]

"p" is the two-sided one-sample t-test of the seed means (of the log ratios for a ratio) against no difference;
"p_holm" the same after Holm's step-down correction (Holm 1979), None outside the corrected family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

MIN_SEEDS = 5
LEVEL = 0.05


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest of m becomes
    max over j <= i of min(1, (m - j + 1) p_(j)). A claim survives at level a when its adjusted p is below a."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def _side(bounds: list[float] | None, null: float) -> int:
    """+1 when the interval lies above `null`, -1 below, 0 when it contains it or is missing."""
    if bounds is None or not all(math.isfinite(bound) for bound in bounds):
        return 0
    return 1 if bounds[0] > null else -1 if bounds[1] < null else 0


def _p_value(claim: dict) -> float:
    """The two-sided t-test of the seed means against no difference (the log ratios for a ratio)."""
    per_seed = claim["over_seeds"]["per_seed"]
    values = np.log(per_seed) if claim.get("scale") == "ratio" else np.asarray(per_seed, dtype=np.float64)
    if np.ptp(values) == 0:  # every seed the same: no spread to test with
        return 0.0 if values[0] != 0 else 1.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def verdicts(claims: Sequence[tuple[dict, float]]) -> list[dict]:
    """The verdict of each (claim, better) of one table (see the module docstring), in the order given."""
    tested = [index for index, (claim, _) in enumerate(claims) if claim["over_seeds"]["n"] >= MIN_SEEDS]
    p_values = {index: _p_value(claims[index][0]) for index in tested}
    adjusted = dict(zip(tested, holm([p_values[index] for index in tested]), strict=True))
    results = []
    for index, (claim, better) in enumerate(claims):
        seeds = claim["over_seeds"]
        null = 1.0 if claim.get("scale") == "ratio" else 0.0
        result = {
            "mean": seeds["mean"],
            "ci95": seeds["ci95"],
            "bootstrap_ci95": claim.get("bootstrap_ci95"),
            "p": p_values.get(index),
            "p_holm": adjusted.get(index),
            "n_seeds": seeds["n"],
        }
        if index not in adjusted:
            word = "too few seeds"
        else:
            side = _side(seeds["ci95"], null)
            agreed = side != 0 and side == _side(result["bootstrap_ci95"], null) and adjusted[index] < LEVEL
            word = "not established" if not agreed else "established" if side * better > 0 else "reversed"
        results.append({"verdict": word, **result})
    return results
