"""The GRU and MLP world models: what they compute (against nn.GRU, step by step), their calling convention (the
SSM's), and the pipeline's --world_model choice."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from core.gru import GRUModel
from core.mlp import MLPModel
from pipeline import cli
from pipeline.config import defaults_for, override
from pipeline.models import WorldModels, make_world_model


def test_gru_model_computes_what_torch_gru_computes():
    torch.manual_seed(0)
    model, reference = GRUModel(state_dim=6, input_dim=4, output_dim=3), nn.GRU(4, 6, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(model.in_proj.weight)
        reference.bias_ih_l0.copy_(model.in_proj.bias)
        reference.weight_hh_l0.copy_(model.hidden_proj.weight)
        reference.bias_hh_l0.copy_(model.hidden_proj.bias)
    x, h0 = torch.randn(3, 9, 4), torch.randn(3, 6)
    y, last = model(x, h0)
    states, expected_last = reference(x, h0[None])
    torch.testing.assert_close(last, expected_last[0])
    torch.testing.assert_close(y, model.out_proj(states))


@pytest.mark.parametrize("make", [lambda: GRUModel(5, 4, 3), lambda: MLPModel(4, 3, 8)], ids=["gru", "mlp"])
def test_step_mode_equals_sequence_mode_with_resets(make):
    torch.manual_seed(1)
    model = make()
    x, reset = torch.randn(2, 7, 4), torch.zeros(2, 7)
    reset[0, 3] = reset[1, 5] = 1
    y, last = model(x, model.init_hidden(2), reset)
    hidden, steps = model.init_hidden(2), []
    for t in range(7):
        out, hidden = model(x[:, t], hidden, reset[:, t])
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), y)
    torch.testing.assert_close(hidden, last)


def test_a_gru_reset_forgets_everything_before_it():
    torch.manual_seed(2)
    model = GRUModel(5, 4, 3)
    x, reset = torch.randn(1, 8, 4), torch.zeros(1, 8)
    reset[0, 4] = 1
    y, _ = model(x, torch.randn(1, 5), reset)
    fresh, _ = model(x[:, 4:], model.init_hidden(1))
    torch.testing.assert_close(y[:, 4:], fresh)


def test_the_mlp_has_no_state_and_sees_only_the_current_input():
    model = MLPModel(4, 3, 8)
    x = torch.randn(2, 6, 4)
    y, hidden = model(x)
    assert hidden.shape == (2, 0)
    torch.testing.assert_close(y[:, 3], model(x[:, 3])[0])


@pytest.mark.parametrize("kind", ["ssm", "ssm_complex", "gru", "mlp"])
def test_world_model_flag_builds_maml_erm_and_oracle_of_that_kind_from_one_initialisation(kind):
    config = override(defaults_for("Pendulum-v1", quick=True), {"world_model": kind, "device": "cpu"})
    models = WorldModels(config, input_dim=4, output_dim=3, context_dim=2)
    kinds = {"ssm": "SSM", "ssm_complex": "SSM", "gru": "GRUModel", "mlp": "MLPModel"}
    assert {type(m).__name__ for m in (models.maml_model, models.erm_model, models.oracle_model)} == {kinds[kind]}
    erm, oracle = models.erm_model.state_dict(), models.oracle_model.state_dict()
    for name, tensor in models.maml_model.state_dict().items():
        torch.testing.assert_close(erm[name], tensor)
        shared = oracle[name][:, :4] if name == "in_proj.weight" else oracle[name]  # its extra inputs: own columns
        torch.testing.assert_close(shared, tensor)
    assert type(make_world_model(config, 4, 3)).__name__ == kinds[kind]
    if kind.startswith("ssm"):
        assert models.maml_model.eigenvalues == ("complex" if kind == "ssm_complex" else "real")


def test_a_supervised_update_with_a_non_finite_gradient_is_skipped_counted_and_leaves_the_weights():
    from env_runner.segments import SegmentBatch

    config = override(defaults_for("Pendulum-v1", quick=True), {"device": "cpu"})
    models = WorldModels(config, input_dim=4, output_dim=3, context_dim=2)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 8, 4, generator=generator), torch.randn(2, 3, 8, 3, generator=generator)
    y[0, 0, 5, 1] = float("inf")  # one target of one window
    reset = torch.zeros(2, 3, 8, dtype=torch.bool)
    batch = SegmentBatch(x[:, :, :4], y[:, :, :4], x[:, :, 4:], y[:, :, 4:], reset[:, :, :4], reset[:, :, 4:])
    before = {name: [p.detach().clone() for p in model.parameters()] for name, model in models._supervised().items()}
    with pytest.warns(UserWarning, match="skipped an update with a non-finite gradient"):
        losses = models.train_step(batch, torch.randn(2, 2, generator=generator))
    assert not math.isfinite(losses["erm"]) and models.skipped() == {"maml": 1, "erm": 1, "oracle": 1}
    for name, model in models._supervised().items():
        assert all(torch.equal(a, b) for a, b in zip(before[name], model.parameters(), strict=True))


def test_an_unknown_world_model_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="world_model must be one of"):
        override(defaults_for("Pendulum-v1"), {"world_model": "lstm"})


@pytest.mark.parametrize(
    "flags",
    [
        ["--world_model", "ssm_complex"],
        ["--world_model", "gru"],
        ["--world_model", "mlp"],
        ["--planner.method", "icem"],
        ["--planner.method", "mppi"],
    ],
    ids=lambda flags: flags[1],
)
def test_each_world_model_and_planner_method_runs_quick_end_to_end(flags, tmp_path):
    cli.main(["--quick", "--no_progress", "--out_dir", str(tmp_path), *flags])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    name, value = flags[0].removeprefix("--").split("."), flags[1]
    saved = metrics["config"][name[0]] if len(name) == 1 else metrics["config"][name[0]][name[1]]
    assert saved == value
    for key in ("control", "control_ood"):
        assert all(math.isfinite(result["mean"]) for result in metrics[key].values()), metrics[key]
    assert all(math.isfinite(mse) for mse in metrics["prediction"]["ood"]["maml"]["1"]["per_task"])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["world_model"] == metrics["config"]["world_model"]


def test_an_ensemble_with_a_gaussian_head_runs_quick_end_to_end(tmp_path):
    cli.main(["--quick", "--no_progress", "--out_dir", str(tmp_path), "--ensemble_size", "2", "--probabilistic"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["ensemble_size"] == 2 and metrics["config"]["probabilistic"]
    for key in ("control", "control_ood"):
        assert all(math.isfinite(result["mean"]) for result in metrics[key].values()), metrics[key]
    assert all(math.isfinite(mse) for mse in metrics["prediction"]["ood"]["maml"]["1"]["per_task"])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["model_config"]["members"] == 2
