"""The fine-tuned baselines choose on val tasks among candidates that include no step, so on val a fine-tuned
baseline is never worse than itself unadapted."""

from __future__ import annotations

import json

import torch

from core.heads import OutputHead
from core.ssm import SSM
from env_runner.segments import SegmentBatch
from pipeline import cli
from pipeline.config import PipelineConfig
from pipeline.prediction import FINE_TUNING_CANDIDATES, NO_STEP, fine_tuner, select_fine_tuning, window_errors

CONFIG = PipelineConfig(eval_steps=(0, 1, 5))
HEAD = OutputHead(3)


def batch(model: SSM, query_targets: str, seed: int = 0) -> SegmentBatch:
    """Val windows (2 tasks x 3 windows x 8 steps) whose support targets are noise; the query targets are the model's
    own predictions ("own": every step away from its weights can only raise the query error) or a fixed linear map
    of the inputs that the support shares ("shared": a step towards it helps)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (2, 3, 8)
    sx, qx = torch.randn(*shape, 4, generator=generator), torch.randn(*shape, 4, generator=generator)
    no_reset = torch.zeros(shape, dtype=torch.bool)
    if query_targets == "own":
        sy = 3.0 * torch.randn(*shape, 3, generator=generator)
        with torch.no_grad():
            qy = model(qx.flatten(0, 1), model.init_hidden(6))[0].unflatten(0, (2, 3))
    else:
        weight = torch.randn(4, 3, generator=generator)
        sy, qy = sx @ weight, qx @ weight
    return SegmentBatch(sx, sy, qx, qy, no_reset, no_reset)


def model() -> SSM:
    torch.manual_seed(0)
    return SSM(8, 4, 3, 16)


def test_no_step_leaves_the_model_as_trained_at_every_k():
    ssm = model()
    errors = window_errors(fine_tuner(ssm, *NO_STEP, CONFIG, HEAD), batch(ssm, "shared"), (0, 1, 5))
    assert errors["1"] == errors["0"] and errors["5"] == errors["0"]


def test_where_every_step_hurts_on_val_the_baseline_takes_none():
    ssm = model()
    val = batch(ssm, "own")
    assert select_fine_tuning(ssm, val, CONFIG, HEAD) == NO_STEP
    stepped = window_errors(fine_tuner(ssm, "sgd", 0.05, CONFIG, HEAD), val, (0, 1))
    assert sum(stepped["1"]) > sum(stepped["0"])  # the step it refused would have raised the val error


def test_where_a_step_helps_on_val_the_baseline_takes_the_best_one_and_is_never_worse_than_none():
    ssm = model()
    val = batch(ssm, "shared")
    choice = select_fine_tuning(ssm, val, CONFIG, HEAD)
    assert choice != NO_STEP and choice in FINE_TUNING_CANDIDATES

    def score(candidate):
        errors = window_errors(fine_tuner(ssm, *candidate, CONFIG, HEAD), val, (1, 5))
        return sum(sum(values) / len(values) for values in errors.values())

    assert score(choice) == min(score(candidate) for candidate in FINE_TUNING_CANDIDATES) < score(NO_STEP)


def test_erm_and_the_oracle_each_record_their_own_choice(tmp_path):
    cli.main(["--quick", "--no_progress", "--threads", "1", "--no-control", "--out_dir", str(tmp_path)])
    settings = json.loads((tmp_path / "metrics.json").read_text())["prediction_settings"]
    assert settings["selected_on"] == "val"
    for name in ("erm", "oracle"):
        assert (settings[f"{name}_optimizer"], settings[f"{name}_learning_rate"]) in FINE_TUNING_CANDIDATES
