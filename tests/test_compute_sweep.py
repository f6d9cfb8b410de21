"""experiments/compute_sweep.py: the quick sweep's outputs and schema, val-only choices, the multiply-add count."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.ssm import SSM
from experiments import compute_sweep
from pipeline.config import defaults_for

SPLIT_KEYS = {"return", "normalized_score", "mse", "seconds_per_step", "seconds_per_step_per_seed"}
SUMMARY_KEYS = {"mean", "ci95", "n", "per_seed", "per_task", "over_seeds", "bootstrap_ci95"}


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory):
    """One quick sweep (seed 0), recording every call of the choice rule: (its inputs, its answer)."""
    out_dir = tmp_path_factory.mktemp("compute_sweep")
    choices = []
    original = compute_sweep.cheapest_tie

    def recording_choose(val, macs):
        chosen = original(val, macs)
        choices.append((val, macs, chosen))
        return chosen

    torch_threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compute_sweep, "cheapest_tie", recording_choose)
        results = compute_sweep.main(["--quick", "--no_progress", "--seeds", "0", "--out_dir", str(out_dir)])
    torch.set_num_threads(torch_threads)
    return out_dir, results, choices


def test_quick_sweep_writes_the_json_with_the_schema_and_the_plot(quick_sweep):
    out_dir, results, _ = quick_sweep
    assert (out_dir / "compute_sweep.png").stat().st_size > 0
    written = json.loads((out_dir / "compute_sweep.json").read_text())
    assert written == json.loads(json.dumps(results))
    keys = {"env_name", "seeds", "quick", "grid", "config", "model", "reference", "selection", "knobs", "timing"}
    assert keys | {"provenance"} <= set(written)
    assert set(written["knobs"]) == set(compute_sweep.QUICK_VALUES)
    assert set(written["reference"]["val"]) == {"random", "true_dynamics"}
    control_tasks = written["config"]["control_tasks"]
    for knob, entry in written["knobs"].items():
        values = entry["values"]
        assert len(values) == 2 and sum(point["default"] for point in values.values()) == 1
        assert sum(point["chosen"] for point in values.values()) == 1
        assert values[str(entry["default"])]["default"] and values[str(entry["chosen"])]["chosen"]
        for point in values.values():
            assert point["macs_per_step"] == pytest.approx(sum(point["macs"].values()))
            for split in ("val", "test"):
                result = point[split]
                assert set(result) == SPLIT_KEYS
                assert set(result["return"]) == SUMMARY_KEYS and len(result["return"]["per_task"]) == control_tasks
                assert set(result["normalized_score"]) == SUMMARY_KEYS
                assert result["seconds_per_step"] > 0
                assert (result["mse"] is not None) == (knob in compute_sweep.ADAPTATION_KNOBS)


def test_the_default_setting_gives_the_same_numbers_under_every_knob(quick_sweep):
    _, results, _ = quick_sweep
    defaults = [entry["values"][str(entry["default"])] for entry in results["knobs"].values()]
    for split in ("val", "test"):
        assert all(point[split]["return"] == defaults[0][split]["return"] for point in defaults)


def test_every_choice_reads_val_results_only(quick_sweep):
    _, results, choices = quick_sweep
    assert len(choices) == len(results["knobs"])
    for (val, macs, chosen), entry in zip(choices, results["knobs"].values(), strict=True):
        values = entry["values"]
        assert val == {key: point["val"]["normalized_score"] for key, point in values.items()}
        assert val != {key: point["test"]["normalized_score"] for key, point in values.items()}
        assert macs == {key: point["macs_per_step"] for key, point in values.items()}
        assert values[chosen]["chosen"] and entry["chosen"] == values[chosen]["value"]


def test_the_chosen_value_is_the_cheapest_inside_the_best_val_interval(quick_sweep):
    _, results, _ = quick_sweep
    for entry in results["knobs"].values():
        scores = {key: point["val"]["normalized_score"] for key, point in entry["values"].items()}
        best = max(scores, key=lambda key: scores[key]["mean"])
        low = scores[best]["ci95"][0] if math.isfinite(scores[best]["ci95"][0]) else scores[best]["mean"]
        ties = [key for key, score in scores.items() if score["mean"] >= low]
        cheapest = min(ties, key=lambda key: entry["values"][key]["macs_per_step"])
        assert entry["chosen"] == entry["values"][cheapest]["value"]


def test_choose_breaks_a_tie_inside_the_interval_toward_fewer_macs_and_keeps_a_clear_winner():
    macs = {"small": 1.0, "large": 2.0}
    tie = {"small": {"mean": 0.5, "ci95": [0.4, 0.8]}, "large": {"mean": 0.6, "ci95": [0.45, 0.75]}}
    assert compute_sweep.cheapest_tie(tie, macs) == "small"
    clear = {"small": {"mean": 0.3, "ci95": [0.2, 0.4]}, "large": {"mean": 0.6, "ci95": [0.55, 0.65]}}
    assert compute_sweep.cheapest_tie(clear, macs) == "large"
    no_interval = {"small": {"mean": 0.5, "ci95": [math.nan, math.nan]}, "large": {"mean": 0.6, "ci95": [math.nan] * 2}}
    assert compute_sweep.cheapest_tie(no_interval, macs) == "large"


def test_a_sweep_from_a_finished_runs_checkpoints_repeats_the_trained_sweep(quick_sweep, tmp_path):
    run_dir, results, _ = quick_sweep
    argv = ["--quick", "--no_progress", "--seeds", "0", "--from_run", str(run_dir), "--out_dir", str(tmp_path)]
    reloaded = compute_sweep.main(argv)
    assert reloaded["from_run"] == str(run_dir)
    for knob, entry in results["knobs"].items():
        for key, point in entry["values"].items():
            again = reloaded["knobs"][knob]["values"][key]
            for split in ("val", "test"):
                assert again[split]["return"] == point[split]["return"]
                assert again[split]["mse"] == point[split]["mse"]


@pytest.mark.parametrize("knob", ["planner.num_candidates", "planner.horizon"])
def test_macs_per_step_grow_linearly_with_candidates_and_horizon(knob):
    config = defaults_for("Pendulum-v1")
    model = SSM(config.state_dim, 4, 3, config.hidden_dim)
    values = (5, 10, 20, 40)
    totals = [
        compute_sweep.macs_per_step(model, compute_sweep.with_knob(config, knob, value))["total"] for value in values
    ]
    slopes = [(b - a) / (vb - va) for a, b, va, vb in zip(totals, totals[1:], values, values[1:], strict=False)]
    assert slopes == pytest.approx([slopes[0]] * len(slopes))
    other = config.planner.horizon if knob == "planner.num_candidates" else config.planner.num_candidates
    assert slopes[0] == pytest.approx(config.planner.num_iterations * other * compute_sweep.token_macs(model))


def test_token_macs_count_every_projection_of_the_ssm():
    model = SSM(state_dim=8, input_dim=4, output_dim=3, hidden_dim=32)
    weights = sum(module.weight.numel() for module in model.modules() if isinstance(module, torch.nn.Linear))
    assert compute_sweep.token_macs(model) == weights + 3 * model.state_dim


def test_every_knob_sweeps_its_default():
    config = compute_sweep.with_knob(defaults_for("Pendulum-v1"), "planner.horizon", 12)
    values = compute_sweep.sweep_values(config, quick=False)
    assert 12 in values["planner.horizon"] and values["adapt.num_steps"] == [0, 1, 2, 5, 10]


def test_the_thin_grid_is_each_knobs_default_and_one_value_each_side():
    values = compute_sweep.sweep_values(defaults_for("Pendulum-v1"), quick=False, grid="thin")
    assert values == {
        "adapt.num_steps": [0, 1, 5],
        "adapt.window": [8, 16, 64],
        "planner.num_candidates": [50, 100, 400],
        "planner.horizon": [10, 15, 25],
    }
