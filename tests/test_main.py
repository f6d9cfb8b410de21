"""main.py (`pipeline.cli`): outputs and schema, determinism, resume, val/test separation, CLI errors, several seeds."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from core.ssm import SSM
from env_runner.tasks import TaskFamily
from meta_rl.meta_maml import MetaMAML
from pipeline import cli as main
from pipeline.executor import available_cores
from pipeline.models import WorldModels

QUICK = ["--quick", "--no_progress", "--seed", "3"]


def load_json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run, recording the split of every task whose environment is made, in order."""
    out_dir = tmp_path_factory.mktemp("quick")
    touched, support_shapes = [], set()
    original_make_env, original_meta_update = TaskFamily.make_env, MetaMAML.meta_update

    def recording_make_env(self, task, seed=None):
        touched.append(task.split)
        return original_make_env(self, task, seed)

    def recording_meta_update(self, tasks, *args, **kwargs):
        support_shapes.update(tuple(task[0].shape[:2]) for task in tasks)
        return original_meta_update(self, tasks, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TaskFamily, "make_env", recording_make_env)
        patch.setattr(MetaMAML, "meta_update", recording_meta_update)
        summary = main.main([*QUICK, "--out_dir", str(out_dir), "--state_dim", "12"])
    metrics = load_json(out_dir / "metrics.json")
    return out_dir, metrics, summary, touched, support_shapes


def test_quick_run_writes_every_output_with_the_schema(quick_run):
    seed_dir, metrics, summary, *_ = quick_run
    for name in (
        "config.json",
        "metrics.json",
        "checkpoint.pt",
        "prediction_mse.png",
        "control_returns.png",
        "control_ood_returns.png",
    ):
        assert (seed_dir / name).is_file() and (seed_dir / name).stat().st_size > 0, name
    assert (seed_dir / "summary.json").is_file() and (seed_dir / "summary.md").is_file()  # one seed: one folder
    assert {"env_name", "seed", "config", "tasks", "prediction", "control", "control_ood", "timing"} <= metrics.keys()
    assert set(metrics["tasks"]) == {"train", "val", "test", "ood"}
    assert set(metrics["tasks"]["test"][0]["coefficients"]) == {"gravity_term", "control_gain"}
    for split in ("in_distribution", "ood"):
        assert set(metrics["prediction"][split]) == {"maml", "erm", "oracle"}
        for learner in metrics["prediction"][split].values():
            assert set(learner) == {"0", "1", "5"}
            for value in learner.values():
                assert len(value["per_task"]) == 3 and math.isfinite(value["mean"]) and len(value["ci95"]) == 2
    for key in ("control", "control_ood"):
        assert set(metrics[key]) == {"tta", "memory_only", "no_tta", "oracle", "random", "true_dynamics"}
        for value in metrics[key].values():
            assert len(value["per_task"]) == 2 and all(len(episodes) == 2 for episodes in value["episodes"])
    assert metrics["prediction_settings"]["selected_on"] == "val"
    assert summary["n_seeds"] == 1 and "tta-memory_only" in summary["control_paired"]
    assert load_json(seed_dir / "config.json") == metrics["config"]
    checkpoint = torch.load(seed_dir / "checkpoint.pt", weights_only=True)
    model = SSM(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    assert checkpoint["model_config"]["input_dim"] == 4 and checkpoint["model_config"]["state_dim"] == 12
    assert checkpoint["epoch"] == metrics["config"]["num_epochs"]


def test_meta_training_adapts_on_the_support_size_used_at_test_time(quick_run):
    _, metrics, _, _, support_shapes = quick_run
    config = metrics["config"]
    assert support_shapes == {(1, config["support_len"])}  # one window, as prediction and online adaptation
    assert config["adapt"]["window"] == config["support_len"]


def test_test_and_ood_tasks_are_read_only_after_everything_else(quick_run):
    touched = quick_run[3]
    first_final = min(index for index, split in enumerate(touched) if split in ("test", "ood"))
    assert "val" in touched[:first_final] and "train" in touched[:first_final]
    assert not {"train", "val"} & set(touched[first_final:])


def test_summary_statistics_match_the_per_seed_values(quick_run):
    _, metrics, summary, *_ = quick_run
    for condition, value in metrics["control"].items():
        assert summary["control"][condition]["mean"] == pytest.approx(value["mean"])
    tta, no_tta = metrics["control"]["tta"]["per_task"], metrics["control"]["no_tta"]["per_task"]
    paired = summary["control_paired"]["tta-no_tta"]
    assert paired["mean"] == pytest.approx(sum(a - b for a, b in zip(tta, no_tta, strict=True)) / len(tta))


def test_same_seed_gives_the_same_metrics(quick_run, tmp_path):
    first = copy.deepcopy(quick_run[1])
    main.main([*QUICK, "--out_dir", str(tmp_path), "--state_dim", "12"])
    second = load_json(tmp_path / "metrics.json")
    for metrics in (first, second):  # wall-clock seconds, and the command line (another --out_dir)
        metrics.pop("timing")
        metrics.pop("provenance")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_several_seeds_run_into_their_own_folders_and_one_summary(tmp_path):
    summary = main.main(
        [
            "--quick",
            "--no_progress",
            "--no-control",
            "--num_epochs",
            "1",
            "--seeds",
            "0",
            "1",
            "--out_dir",
            str(tmp_path),
        ]
    )
    assert summary["seeds"] == [0, 1] and summary["n_seeds"] == 2
    per_seed = [load_json(tmp_path / f"seed_{seed}" / "metrics.json") for seed in (0, 1)]
    maml = summary["prediction"]["in_distribution"]["maml"]["1"]
    assert maml["per_seed"] == pytest.approx(  # errors pool as geometric means
        [math.exp(np.mean(np.log(run["prediction"]["in_distribution"]["maml"]["1"]["per_task"]))) for run in per_seed]
    )
    assert maml["n"] + maml.get("diverged", 0) == 6


def test_resume_after_an_interrupted_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    # quick: the last epoch starts with on-policy collection; Meta-SGD: the learned inner rates resume too
    flags = [*QUICK, "--num_epochs", "3", "--learn_inner_lr"]
    main.main([*flags, "--out_dir", str(tmp_path / "full")])
    uninterrupted = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)

    original = WorldModels.train_step
    calls = []

    def killed_in_epoch_three(self, batch, context=None):
        calls.append(1)
        if len(calls) == 13:  # quick: 5 updates per epoch, so this is inside the on-policy epoch 3
            raise KeyboardInterrupt
        return original(self, batch, context)

    monkeypatch.setattr(WorldModels, "train_step", killed_in_epoch_three)
    with pytest.raises(SystemExit) as stopped:  # Ctrl-C: one line, exit status 130
        main.main([*flags, "--out_dir", str(tmp_path / "resumed")])
    assert stopped.value.code == 130
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(WorldModels, "train_step", original)
    main.main([*flags, "--out_dir", str(tmp_path / "resumed"), "--resume"])
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == 3
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["timing"]["resumed"] is True
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["timing"]["resumed"] is False
    for name, value in uninterrupted["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, atol=0, rtol=0, msg=name)
    for name, value in uninterrupted["models"]["erm_model"].items():
        torch.testing.assert_close(resumed["models"]["erm_model"][name], value, atol=0, rtol=0, msg=name)
    learned_rates = uninterrupted["models"]["learner"]["inner_lrs"]
    assert learned_rates.keys() == uninterrupted["model"].keys()  # one rate tensor per weight
    assert any((rate != 0.05).any() for rate in learned_rates.values())  # moved from inner_lr
    for name, value in learned_rates.items():
        torch.testing.assert_close(resumed["models"]["learner"]["inner_lrs"][name], value, atol=0, rtol=0, msg=name)
    torch.testing.assert_close(resumed["dataset"]["obs"], uninterrupted["dataset"]["obs"], atol=0, rtol=0)
    curves = [
        json.loads((tmp_path / run / "metrics.json").read_text())["training"]["curve"] for run in ("full", "resumed")
    ]
    assert [row["epoch"] for row in curves[1]] == [1, 2, 3] and curves[1] == curves[0]  # the curve resumes too


def test_resume_with_other_flags_is_refused_naming_each_difference(tmp_path, capsys):
    main.main([*QUICK, "--no-control", "--num_epochs", "1", "--out_dir", str(tmp_path)])
    flags = ["--inner_lr", "0.3", "--planner.horizon", "4", "--out_dir", str(tmp_path), "--resume"]
    with pytest.raises(SystemExit):
        main.main([*QUICK, "--no-control", "--num_epochs", "1", *flags])
    error = capsys.readouterr().err
    assert "configuration differs" in error and "--inner_lr was 0.05, now 0.3" in error
    assert "--planner.horizon was 5, now 4" in error


def test_resume_of_a_corrupt_checkpoint_names_the_file_and_starts_again(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="checkpoint.pt is not a readable ssm-metarl pipeline checkpoint") as seen:
        main.main([*QUICK, "--out_dir", str(tmp_path), "--resume"])
    assert "weights_only=False" not in str(seen[0].message) and "starts again" in str(seen[0].message)
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input_dim", "7"], "--input_dim 7 contradicts Pendulum-v1"),
        (["--env_name", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
        (["--num_epochs", "0"], "--num_epochs must be an int >= 1, got 0"),
        (["--inner_lr", "-1"], "--inner_lr must be a finite number > 0, got -1.0"),
        (["--state_dim", "many"], "invalid int value"),
        (["--resume"], "--resume needs an existing checkpoint"),
        (["--seed", "-1"], "--seed must be an int >= 0, got -1"),
        (["--adapt.window_state", "sometimes"], "invalid choice"),
        (["--planner.horizon", "0"], "--planner.horizon must be an int >= 1, got 0"),
        (["--env_name", "MountainCar-v0"], "pass --reward learned or --no-control"),
        (["--threads", "0"], "--threads must be none or an int >= 1, got 0"),
        (["--jobs", "0"], "--jobs must be an int >= 1, got 0"),
    ],
)
def test_bad_flags_are_argparse_errors(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.main([*QUICK, "--out_dir", str(tmp_path / "never"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_threads_sets_torchs_thread_count_before_the_run(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(main, "run_seeds", lambda *args, **kwargs: seen.append(torch.get_num_threads()))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        main.main([*QUICK, "--out_dir", str(tmp_path), "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert seen == [1]


def test_programmatic_config_is_validated_too():
    from pipeline.config import PipelineConfig

    with pytest.raises(ValueError, match="meta_batch_size must be an int >= 1, got 0"):
        PipelineConfig(meta_batch_size=0)


def test_single_task_family_runs_and_says_it_has_no_task_distribution(tmp_path, capsys):
    with pytest.warns(UserWarning, match="no task distribution"):
        main.main(["--quick", "--no-control", "--env_name", "MountainCar-v0", "--out_dir", str(tmp_path)])
    metrics = load_json(tmp_path / "metrics.json")
    assert metrics["task_distribution"] is False and "ood" not in metrics["prediction"]
    assert "single-task family" in capsys.readouterr().out


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main.main(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--env_name",
        "--num_epochs",
        "--input_dim",
        "--state_dim",
        "--resume",
        "--quick",
        "--no-control",
        "--first_order",
        "--device",
        "--out_dir",
        "--seeds",
        "--planner.horizon",
        "--adapt.window",
    ):
        assert flag in text


def test_metrics_record_where_their_numbers_came_from(quick_run):
    import subprocess

    provenance = quick_run[1]["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    assert provenance["git_commit"] == (head or "unknown") and isinstance(provenance["git_dirty"], bool | None)
    assert provenance["versions"]["torch"] == torch.__version__ and set(provenance["versions"]) == {
        "python",
        "torch",
        "gymnasium",
        "mujoco",
        "numpy",
    }
    assert provenance["argv"][1:] == [*QUICK, "--out_dir", str(quick_run[0]), "--state_dim", "12"]
    # no --threads: the run follows the load, on up to every core
    assert provenance["threads"] == available_cores() and provenance["threads_follow_load"]
    assert provenance["device"] == "cpu" and provenance["cpu"]


def test_published_results_do_not_make_the_code_dirty(tmp_path, monkeypatch):
    import subprocess

    from pipeline import provenance

    def git(*arguments):
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "docs" / "results").mkdir(parents=True)
    for name in ("model.py", "README.md", "docs/results/summary.json"):
        (tmp_path / name).write_text("0")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    monkeypatch.setattr(provenance, "CODE_ROOT", tmp_path.resolve())
    (tmp_path / "README.md").write_text("1")
    (tmp_path / "docs" / "results" / "summary.json").write_text("1")
    assert provenance.provenance(["main.py"], "cpu")["git_dirty"] is False
    (tmp_path / "model.py").write_text("1")
    assert provenance.provenance(["main.py"], "cpu")["git_dirty"] is True


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    from pipeline import provenance

    monkeypatch.setattr(provenance, "CODE_ROOT", tmp_path)
    record = provenance.provenance(["main.py"], "cpu")
    assert record["git_commit"] == "unknown" and record["git_dirty"] is None
