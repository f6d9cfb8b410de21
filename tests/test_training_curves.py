"""The training curves: a row per epoch of each model's mean meta-training loss and its loss on the val tasks'
windows, in metrics.json, in training_curves.png and, with --tensorboard, live in TensorBoard."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pipeline import cli
from pipeline.config import defaults_for
from pipeline.prediction import maml_adapter, window_errors
from pipeline.report.tensorboard import scalars
from pipeline.world import train_world

QUICK = ["--quick", "--no_progress", "--threads", "1", "--device", "cpu", "--no-control"]


def logged(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_run_records_each_epochs_train_and_val_losses_and_logs_them_to_tensorboard(tmp_path):
    cli.main([*QUICK, "--num_epochs", "3", "--out_dir", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    curve = json.loads((tmp_path / "run" / "metrics.json").read_text())["training"]["curve"]
    assert [row["epoch"] for row in curve] == [1, 2, 3]
    assert all(set(row["train"]) == set(row["val"]) == {"maml", "erm", "oracle"} for row in curve)
    assert (tmp_path / "run" / "training_curves.png").stat().st_size > 0
    seen = logged(tmp_path / "tb")
    for tag in ("train/maml", "val/maml", "val/erm", "train/oracle"):
        part, name = tag.split("/")
        assert seen[tag] == [(row["epoch"], pytest.approx(row[part][name])) for row in curve], tag


def test_rl2_logs_each_policys_curve_at_its_environment_steps(tmp_path):
    cli.main(["--algo", "rl2", "--env_name", "PointNavigation-v0", *QUICK[:-1], "--out_dir", str(tmp_path / "run")]
             + ["--tensorboard", str(tmp_path / "tb")])  # fmt: skip
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for policy in ("ssm", "oracle"):
        curve = metrics["rl2_training"][policy]
        seen = logged(tmp_path / "tb" / policy)
        assert seen["episode_returns/1"] == [
            (row["env_steps"], pytest.approx(row["episode_returns"][0])) for row in curve
        ]


def test_the_val_loss_is_metamamls_one_step_query_error_on_the_val_windows(tmp_path):
    """Against an independent path: one `Adapter.from_meta` step per window, as the prediction stage takes it."""
    config = replace(defaults_for("Pendulum-v1", quick=True), control=False, device="cpu")
    world = train_world(config, tmp_path, progress=False)
    per_task = window_errors(maml_adapter(world), world.val_windows, (1,))["1"]
    assert world.curve[-1]["val"]["maml"] == pytest.approx(sum(per_task) / len(per_task), rel=1e-5)


def test_scalars_flatten_a_row_by_path_and_leave_out_its_step_and_what_is_not_a_finite_number():
    row = {"epoch": 2, "train": {"maml": 0.5}, "episode_returns": [1.0, float("nan"), 3], "note": "x", "ok": True}
    assert scalars(row) == [("train/maml", 0.5), ("episode_returns/1", 1.0), ("episode_returns/3", 3.0)]


def test_tensorboard_without_the_extra_is_refused_naming_it_before_any_work(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def without_tensorboard(name, *args, **kwargs):
        if name == "tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tensorboard)
    with pytest.raises(SystemExit):
        cli.main([*QUICK, "--out_dir", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")])
    assert 'pip install -e ".[tensorboard]"' in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
