"""main.py: outputs and schema, determinism, resume, CLI errors, and the seed README's workflow."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

import main
from adaptation.test_time_adaptation import Adapter
from core.ssm import SSM
from pipeline.training import WorldModels

QUICK = ["--quick", "--no_progress", "--seed", "3"]


def load_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("quick")
    updates = []
    original = Adapter.update_step

    def counting_update_step(self, *args, **kwargs):
        updates.append(1)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Adapter, "update_step", counting_update_step)
        metrics = main.main([*QUICK, "--out_dir", str(out_dir), "--state_dim", "12"])
    return out_dir, metrics, len(updates)


def test_quick_run_writes_every_output_with_the_schema(quick_run):
    out_dir, metrics, _ = quick_run
    for name in ("config.json", "metrics.json", "checkpoint.pt", "prediction_mse.png", "control_returns.png"):
        assert (out_dir / name).is_file() and (out_dir / name).stat().st_size > 0, name
    written = load_json(out_dir / "metrics.json")
    assert written == json.loads(json.dumps(metrics))
    assert {"env_name", "seed", "config", "prediction", "control", "timing"} <= written.keys()
    assert written["task_distribution"] is True
    for split in ("in_distribution", "ood"):
        for model in ("maml", "erm"):
            assert set(written["prediction"][split][model]) == {"0", "1", "5"}
            assert all(math.isfinite(value) for value in written["prediction"][split][model].values())
        assert set(written["prediction"][split]["maml_in_context"]) == {"0", "1"}
    assert {"tta", "no_tta", "random", "true_dynamics"} <= written["control"].keys()
    assert all(isinstance(written["control"][key], float) for key in ("tta", "no_tta", "random"))
    assert written["timing"]["total_s"] > 0
    assert load_json(out_dir / "config.json") == written["config"]
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert {"model", "normalizer", "models", "config", "epoch"} <= checkpoint.keys()
    model = SSM(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    assert checkpoint["epoch"] == written["config"]["num_epochs"]


def test_seed_readme_workflow_appears_in_the_pipeline(quick_run):
    out_dir, metrics, adapter_updates = quick_run
    checkpoint = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    # 1-2: widths read from the gymnasium environment (Pendulum: obs 3, action 1); 6: --state_dim on its own
    assert checkpoint["model_config"]["input_dim"] == metrics["config"]["input_dim"] == 4
    assert checkpoint["model_config"]["output_dim"] == 3
    assert checkpoint["model_config"]["state_dim"] == 12
    # 3: a collect_data function that uses the environment
    rollouts = main.collect_data(main.make_task_family("Pendulum-v1"),
                                 main.make_task_family("Pendulum-v1").sample(2, seed=0), 5, seed=0, progress=False)
    assert rollouts.obs.shape == (2, 5, 3)
    # 4: meta-training with MetaMAML on that data; 5: the Adapter adapted while acting
    assert math.isfinite(metrics["training"]["final_maml_outer_loss"])
    random_transitions = metrics["config"]["num_train_tasks"] * metrics["config"]["steps_per_task"]
    assert metrics["training"]["transitions"] > random_transitions  # on-policy data was added
    assert adapter_updates > 0


def test_same_seed_gives_the_same_metrics(quick_run, tmp_path):
    first = copy.deepcopy(quick_run[1])
    second = main.main([*QUICK, "--out_dir", str(tmp_path), "--state_dim", "12"])
    for metrics in (first, second):
        metrics.pop("timing")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_resume_after_an_interrupted_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    flags = [*QUICK, "--num_epochs", "3"]  # quick: the last epoch starts with on-policy collection
    main.main([*flags, "--out_dir", str(tmp_path / "full")])
    uninterrupted = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)

    original = WorldModels.train_step
    calls = []

    def killed_in_epoch_two(self, batch):
        calls.append(1)
        if len(calls) == 13:  # quick: 5 updates per epoch, so this is inside the on-policy epoch 3
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(WorldModels, "train_step", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        main.main([*flags, "--out_dir", str(tmp_path / "resumed")])
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(WorldModels, "train_step", original)
    main.main([*flags, "--out_dir", str(tmp_path / "resumed"), "--resume"])
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == 3
    for name, value in uninterrupted["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, atol=0, rtol=0, msg=name)
    for name, value in uninterrupted["models"]["erm_model"].items():
        torch.testing.assert_close(resumed["models"]["erm_model"][name], value, atol=0, rtol=0, msg=name)
    torch.testing.assert_close(resumed["dataset"]["obs"], uninterrupted["dataset"]["obs"], atol=0, rtol=0)


def test_resume_with_other_flags_is_refused(tmp_path):
    main.main([*QUICK, "--no_control", "--num_epochs", "1", "--out_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="configuration differs"):
        main.main([*QUICK, "--no_control", "--num_epochs", "1", "--inner_lr", "0.3", "--out_dir", str(tmp_path),
                   "--resume"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input_dim", "7"], "--input_dim 7 contradicts Pendulum-v1"),
        (["--env_name", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
        (["--num_epochs", "0"], "--num_epochs must be >= 1"),
        (["--inner_lr", "-1"], "must be positive"),
        (["--state_dim", "many"], "invalid int value"),
        (["--resume"], "--resume needs an existing checkpoint"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--env_name", "MountainCar-v0"], "pass --no_control"),
    ],
)
def test_bad_flags_are_argparse_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main([*QUICK, "--out_dir", str(tmp_path / "never"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_single_task_family_runs_and_says_it_has_no_task_distribution(tmp_path, capsys):
    with pytest.warns(UserWarning, match="no task distribution"):
        metrics = main.main(["--quick", "--no_progress", "--no_control", "--env_name", "MountainCar-v0",
                             "--out_dir", str(tmp_path)])
    assert metrics["task_distribution"] is False and "ood" not in metrics["prediction"]
    assert "single-task family" in capsys.readouterr().out


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--env_name", "--num_epochs", "--input_dim", "--state_dim", "--resume", "--quick", "--no_control",
                 "--first_order", "--device", "--out_dir"):
        assert flag in text
