"""The command line under real use: recovery paths that recover, folders that two runs cannot share, a diverging
run that stops with one line, Ctrl-C under --jobs, and output a person can read."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from pipeline import cli
from pipeline.console import show_mujoco_warnings_once
from pipeline.executor import Executor
from pipeline.models import WorldModels
from pipeline.report.summary import seed_metrics, summarize
from pipeline.run_folder import RunFolderLock

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
FAST = ["--quick", "--threads", "1", "--no-control", "--no_progress"]  # seconds a seed


def test_ctrl_c_before_the_first_checkpoint_prints_a_command_that_works(tmp_path, monkeypatch, capsys):
    out_dir = tmp_path / "run"
    original = WorldModels.train_step

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(WorldModels, "train_step", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main([*FAST, "--out_dir", str(out_dir)])
    assert stopped.value.code == 130 and not (out_dir / "checkpoint.pt").exists()
    command = capsys.readouterr().out.strip().splitlines()[-1].split("continue with: ")[1]
    assert "--overwrite" in command and "--resume" not in command
    monkeypatch.setattr(WorldModels, "train_step", original)
    cli.main(shlex.split(command)[2:])  # "python main.py" then the flags
    assert (out_dir / "metrics.json").is_file()


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """A finished two-seed run, and its metrics, to break and resume."""
    out_dir = tmp_path_factory.mktemp("seeds") / "run"
    cli.main([*FAST, "--seeds", "0", "1", "--out_dir", str(out_dir)])
    return out_dir, {seed: (out_dir / f"seed_{seed}" / "metrics.json").read_text() for seed in (0, 1)}


def copy_of(run: Path, tmp_path: Path) -> Path:
    subprocess.run(["cp", "-r", str(run), str(tmp_path / "run")], check=True)
    return tmp_path / "run"


def numbers(metrics: str) -> dict:
    return {key: value for key, value in json.loads(metrics).items() if key not in ("timing", "provenance")}


def test_a_truncated_metrics_file_is_named_and_its_seed_runs_again(two_seeds, tmp_path):
    run, finished = two_seeds
    run = copy_of(run, tmp_path)
    (run / "seed_1" / "metrics.json").write_text(finished[1][:100])
    with pytest.warns(UserWarning, match=r"seed_1/metrics.json is not readable JSON"):
        summary = cli.main([*FAST, "--seeds", "0", "1", "--out_dir", str(run), "--resume"])
    assert summary["seeds"] == [0, 1]
    assert numbers((run / "seed_1" / "metrics.json").read_text()) == numbers(finished[1])


def test_a_truncated_checkpoint_is_named_its_seed_starts_again_and_the_others_continue(two_seeds, tmp_path):
    run, finished = two_seeds
    run = copy_of(run, tmp_path)
    (run / "seed_0" / "metrics.json").unlink()
    checkpoint = run / "seed_0" / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"seed_0/checkpoint.pt is not a readable ssm-metarl pipeline checkpoint"):
        summary = cli.main([*FAST, "--seeds", "0", "1", "--out_dir", str(run), "--resume"])
    assert summary["seeds"] == [0, 1]
    assert numbers((run / "seed_0" / "metrics.json").read_text()) == numbers(finished[0])  # redone from nothing
    assert (run / "seed_1" / "metrics.json").read_text() == finished[1]  # read back, not rerun


def test_resuming_fewer_seeds_than_the_folder_holds_is_refused_naming_them(two_seeds, capsys):
    run, finished = two_seeds
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    with pytest.raises(SystemExit):
        cli.main([*FAST, "--seeds", "0", "--out_dir", str(run), "--resume"])
    assert "holds seeds 0 1: resuming without seed 1" in capsys.readouterr().err
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == before


def test_a_folder_in_use_is_refused_and_a_killed_holder_leaves_it_free(tmp_path, capsys):
    out_dir = tmp_path / "run"
    with RunFolderLock(out_dir), pytest.raises(SystemExit):
        cli.main([*FAST, "--out_dir", str(out_dir)])
    assert f"--out_dir {out_dir} is in use by another run (process {os.getpid()})" in capsys.readouterr().err
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pipeline.run_folder import RunFolderLock; from pathlib import Path; "
         f"lock = RunFolderLock(Path({str(out_dir)!r})); print('held', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match="in use by another run"):
        RunFolderLock(out_dir)
    holder.kill()
    holder.wait()
    with RunFolderLock(out_dir):  # the operating system released the killed holder's lock
        pass


def test_training_that_diverges_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
    out_dir = tmp_path / "run"
    original = WorldModels.train_step
    calls = []

    def diverging_in_epoch_two(self, batch, context=None):
        calls.append(1)
        losses = original(self, batch, context)
        return losses | {"erm": float("nan")} if len(calls) > 5 else losses  # quick: 5 meta-updates an epoch

    monkeypatch.setattr(WorldModels, "train_step", diverging_in_epoch_two)
    with pytest.raises(SystemExit) as stopped:
        cli.main([*FAST, "--out_dir", str(out_dir)])
    message = str(stopped.value.code)
    assert (
        "training diverged in epoch 2, meta-batch 1: the erm loss, weights or last 10 gradients are not finite"
        in message
    )
    assert "\n" not in message and f"{out_dir / 'checkpoint.pt'} keeps epoch 1" in message
    state = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(value).all() for value in state["model"].values())


def test_diverging_learning_rates_stop_once_updates_are_skipped_ten_in_a_row(tmp_path):
    out_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped, pytest.warns(UserWarning, match="non-finite"):
        cli.main([*FAST, "--inner_lr", "1e6", "--outer_lr", "10", "--out_dir", str(out_dir)])
    message = str(stopped.value.code)  # quick: 5 meta-updates an epoch, so the tenth skipped one is in epoch 2
    assert "training diverged in epoch 2, meta-batch 5" in message and "Lower --outer_lr or --inner_lr" in message
    state = torch.load(out_dir / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(value).all() for value in state["model"].values())


def test_an_unreachable_ray_address_is_refused_within_seconds():
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="--ray_address 127.0.0.1:1: no Ray cluster answers there"):
        Executor("ray", ray_address="127.0.0.1:1").check_available()
    assert time.perf_counter() - started < 30


def test_ctrl_c_under_jobs_prints_one_line_and_leaves_no_worker(tmp_path):
    command = [sys.executable, "main.py", "--quick", "--seeds", "0", "1", "--jobs", "2", "--num_epochs", "200",
               "--out_dir", str(tmp_path / "run")]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "run").glob("seed_*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.5)  # both workers are training
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "interrupted:" in output and "--resume" in output, output
    deadline = time.monotonic() + 10  # the workers, and multiprocessing's resource tracker, end within seconds
    while (alive := group_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], alive


def group_members(group: int) -> list[str]:
    listed = subprocess.run(["ps", "-eo", "pgid=,stat=,args="], capture_output=True, text=True).stdout.splitlines()
    return [line for line in listed if line.split()[0] == str(group) and not line.split()[1].startswith("Z")]


def test_mujoco_warnings_are_shown_once_per_process(capfd):
    show_mujoco_warnings_once()
    for _ in range(3):
        gym.make("HalfCheetah-v5").close()
    warnings = [line for line in capfd.readouterr().err.splitlines() if "settotalmass" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: MuJoCo: ")


def test_no_progress_hides_the_progress_but_says_where_the_results_went(tmp_path, capsys):
    cli.main([*FAST, "--out_dir", str(tmp_path / "run")])
    output = capsys.readouterr().out
    assert output.count(f"output folder: {tmp_path / 'run'}") == 2 and "epoch 1/2" not in output
    assert "#### Pendulum-v1" in output


def test_a_horizon_beyond_the_episode_is_warned_about(tmp_path, capsys):
    cli.main([*FAST[:-2], "--no_progress", "--planner.horizon", "30", "--out_dir", str(tmp_path / "run")])
    assert "warning: --planner.horizon 30 is longer than an episode (--episode_steps 20)" in capsys.readouterr().err


def test_help_lists_the_task_families_and_each_default_once():
    text = subprocess.run([sys.executable, "main.py", "--help"], cwd=REPO, capture_output=True, text=True).stdout
    assert "task families (--env_name): Pendulum-v1, CartPole-v1" in text and "HalfCheetahCrippled-v0" in text
    flat = " ".join(text.split())
    assert "(default: that width) (default" not in flat and "world-model input width" in flat


def test_rl2_normalised_score_is_withheld_where_the_oracle_is_no_ceiling():
    summary = summarize(seed_metrics(RESULTS / "rl2_pointnav"))
    withheld = summary["rl2_normalized_score"]["in_distribution"]["withheld"]
    assert withheld == "the oracle is no ceiling here: ssm, random returned more over seeds"
    ood = summary["rl2_normalized_score"]["ood"]  # there the oracle returns the most: scored on the seeds whose
    assert ood["ssm"]["n"] == 100 - 10 * ood["excluded_collapsed_oracle_seeds"]  # oracle did not collapse
    assert ood["excluded_collapsed_oracle_seeds"] == len(summary["rl2_collapsed"]["oracle"]) > 0
