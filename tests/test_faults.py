"""Bad input, interrupted runs and reused folders: a clear error before any write, or correct behaviour, and no
earlier result lost or mixed with a new one."""

from __future__ import annotations

import json
import os

import pytest

from pipeline import cli
from pipeline.models import WorldModels

QUICK = ["--quick", "--no_progress", "--threads", "1", "--num_epochs", "1", "--no-control"]


def refused(flags: list[str], capsys) -> str:
    """The one-line error of a command that must be refused (exit status 2)."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(flags)
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def snapshot(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("finished")
    cli.main([*QUICK, "--seeds", "0", "1", "--out_dir", str(out_dir)])
    (out_dir / "notes.txt").write_text("the user's own file")
    return out_dir


def test_a_folder_that_holds_a_run_is_refused_without_resume_or_overwrite(finished_run, capsys):
    before = snapshot(finished_run)
    error = refused([*QUICK, "--seeds", "0", "1", "--out_dir", str(finished_run)], capsys)
    assert "already holds a run: continue it with --resume, or replace it with --overwrite" in error
    assert snapshot(finished_run) == before


def test_a_refused_resume_changes_nothing_on_disk(finished_run, capsys):
    (finished_run / "seed_1" / "metrics.json").rename(finished_run / "seed_1" / "metrics.moved")  # seed 1 unfinished
    before = snapshot(finished_run)
    try:
        flags = [*QUICK, "--seeds", "0", "1", "--hidden_dim", "32", "--out_dir", str(finished_run), "--resume"]
        error = refused(flags, capsys)
        assert "the configuration differs" in error and "--hidden_dim was 16, now 32" in error
        assert snapshot(finished_run) == before
    finally:
        (finished_run / "seed_1" / "metrics.moved").rename(finished_run / "seed_1" / "metrics.json")


def test_overwrite_replaces_the_old_run_and_keeps_the_users_files(finished_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, content in snapshot(finished_run).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(content)
    cli.main([*QUICK, "--out_dir", str(copy), "--overwrite"])  # one seed now, in the folder itself
    assert not (copy / "seed_0").exists() and not (copy / "seed_1").exists()
    assert (copy / "notes.txt").read_text() == "the user's own file"
    assert json.loads((copy / "metrics.json").read_text())["seed"] == 0


def test_the_same_seed_twice_is_refused(tmp_path, capsys):
    error = refused([*QUICK, "--seeds", "0", "0", "--out_dir", str(tmp_path / "never")], capsys)
    assert "--seeds must be distinct ints >= 0, got 0 0 (see" in error and not (tmp_path / "never").exists()


@pytest.mark.parametrize("case", ["a file", "not writable"])
def test_an_out_dir_that_cannot_take_a_run_is_refused(case, tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "out"
    if case == "a file":
        out_dir.write_text("not a folder")
        expected = "--out_dir must be a folder, got"
    else:
        monkeypatch.setattr(os, "access", lambda path, mode: False)
        expected = "--out_dir must be a folder this user can write"
    assert expected in refused([*QUICK, "--out_dir", str(out_dir)], capsys)


def test_an_environment_whose_dependency_is_missing_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("gymnasium")
    try:
        import Box2D  # noqa: F401
    except ImportError:
        error = refused([*QUICK, "--env_name", "LunarLander-v3", "--out_dir", str(tmp_path / "never")], capsys)
        assert "--env_name LunarLander-v3 cannot be made here" in error and "box2d" in error.lower()
    else:
        pytest.skip("Box2D is installed here: LunarLander-v3 can be made")


def test_ctrl_c_prints_the_command_that_continues_and_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(self, batch, context=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(WorldModels, "train_step", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main([*QUICK, "--out_dir", str(tmp_path / "run")])
    assert stopped.value.code == 130
    out = capsys.readouterr().out.strip().splitlines()  # --no_progress: where the run went, then one line
    assert out[0] == f"output folder: {tmp_path / 'run'}" and out[1:-1] == [""]
    assert out[-1].startswith(f"interrupted: {tmp_path / 'run'} keeps every finished epoch")
    assert out[-1].endswith(f"--out_dir {tmp_path / 'run'} --overwrite")  # no checkpoint yet: nothing to resume


def test_a_run_without_test_or_ood_tasks_finishes(tmp_path):
    flags = [*QUICK, "--num_test_tasks", "0", "--num_ood_tasks", "0", "--out_dir", str(tmp_path)]
    summary = cli.main(flags)
    assert summary["prediction"] == {} and (tmp_path / "metrics.json").is_file()


def test_without_val_tasks_erm_fine_tuning_says_it_was_not_selected(tmp_path):
    cli.main([*QUICK, "--num_val_tasks", "0", "--out_dir", str(tmp_path)])
    settings = json.loads((tmp_path / "metrics.json").read_text())["prediction_settings"]
    assert settings["selected_on"].startswith("nothing: no val tasks") and settings["erm_optimizer"] == "sgd"


def test_a_run_prints_its_folder_stage_lines_with_their_time_and_its_results_once(tmp_path, capsys):
    cli.main(["--quick", "--threads", "1", "--num_epochs", "1", "--out_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith(f"output folder: {tmp_path}\n") and out.rstrip().endswith(f"output folder: {tmp_path}")
    assert "s] collect (6 train tasks)" in out  # "[     0 s] collect ...": seconds since the start
    assert out.count("Prediction MSE, in_distribution") == 1
