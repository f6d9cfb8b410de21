"""Every valued flag, given a drawn value (0, negatives, NaN, infinities, overflow, junk, or a fitting one), either
ends in argument parsing or validation with a one-line message naming a flag (the drawn one, or the one it must
agree with) and nothing written, or completes a tiny run. Fitting values are drawn small: a huge epoch count is
valid and would simply run for a long time."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cli
from pipeline.config import defaults_for

TINY = [
    "--quick",
    "--no_progress",
    "--threads",
    "1",
    "--num_epochs",
    "1",
    "--control_tasks",
    "1",
    "--control_episodes",
    "1",
    "--episode_steps",
    "5",
]
JUNK = ["0", "-1", "-7", "nan", "inf", "-inf", "1e400", "-1e400", "many", ""]
SPECIAL = {"--env_name": ["Pendulum-v1", "NoSuchEnv-v0"], "--device": ["cpu", "auto", "gpu", "mps", "cuda:x"]}


def setting_flags(config, group: str = "") -> dict[str, list[str]]:
    """Every valued flag of the settings (switches such as --control aside) -> its fitting values: the quick
    value and its neighbour, a choice setting's choices."""
    flags = {}
    for item in dataclasses.fields(config):
        value, flag = getattr(config, item.name), f"--{group}{item.name}"
        rule = item.metadata.get("rule")
        if dataclasses.is_dataclass(value):
            flags.update(setting_flags(value, f"{group}{item.name}."))
        elif isinstance(value, bool):
            continue
        elif flag in SPECIAL:
            flags[flag] = SPECIAL[flag]
        elif rule is not None and rule.choices is not None:
            flags[flag] = [str(choice) for choice in rule.choices]
        elif value is None:
            flags[flag] = ["none"]
        elif isinstance(value, tuple):
            flags[flag] = [" ".join(map(str, value))]
        elif isinstance(value, int):
            flags[flag] = [str(value), str(value + 1)]
        else:
            flags[flag] = [str(value), str(value / 2)]
    return flags


FLAGS = setting_flags(defaults_for("Pendulum-v1", quick=True))


@st.composite
def flag_and_value(draw) -> tuple[str, str]:
    flag = draw(st.sampled_from(sorted(FLAGS)))
    return flag, draw(st.sampled_from([*FLAGS[flag], *JUNK]))


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=flag_and_value())
def test_a_flag_value_is_refused_in_one_line_before_any_write_or_runs(drawn, tmp_path_factory, capsys):
    flag, value = drawn
    out_dir = tmp_path_factory.mktemp("run") / "out"
    try:
        summary = cli.main([*TINY, flag, *value.split(" "), "--out_dir", str(out_dir)])
    except SystemExit as refused:
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert refused.code == 2 and not out_dir.exists(), (flag, value, error)
        assert "error: " in error and re.search(r"--[a-z_.0-9]+", error), f"{flag} {value!r}: {error}"  # a flag named
        return
    capsys.readouterr()
    assert (out_dir / "metrics.json").is_file() and summary["n_seeds"] == 1, (flag, value)
    for key in ("control", "control_ood"):
        assert all(math.isfinite(row["mean"]) for row in summary.get(key, {}).values()), (flag, value)


def test_every_valued_setting_is_drawn():
    assert {"--num_epochs", "--planner.horizon", "--adapt.window", "--rl2.gamma", "--eval_steps"} <= set(FLAGS)
    assert len(FLAGS) > 50


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--planner.init_std", "nan"], "--planner.init_std must be a finite number > 0, got nan"),
        (["--outer_lr", "1e400"], "--outer_lr must be a finite number > 0, got inf"),
        (["--inner_grad_clip", "-1"], "--inner_grad_clip must be a finite number > 0, got -1.0"),
        (["--grad_clip_norm", "-1"], "--grad_clip_norm must be a finite number > 0, got -1.0"),
        (["--eval_steps", "-1"], "--eval_steps must be one or more ints >= 0, got (-1,)"),
        (["--steps_per_task", "0"], "--steps_per_task must be an int >= 1, got 0"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["--seeds", "0", "0"], "--seeds must be distinct ints >= 0, got 0 0"),
        # what cannot be honoured is refused, naming the largest value that can
        (["--explore_steps", "5"], "--explore_steps must be less than --episode_steps (5)"),
        (["--control_tasks", "100"], "--control_tasks must be at most 3 (the test and OOD tasks"),
        (["--onpolicy_rounds", "5"], "--onpolicy_rounds must be at most --num_epochs (1)"),
        (["--meta_batch_size", "50"], "--meta_batch_size must be at most --num_train_tasks (6), got 50"),
        (["--env_steps", "100"], "--env_steps must be random steps (6 x 64 = 384) plus a whole number of"),
        (["--threads", "999"], "--threads must be at most"),
        # flags that cannot apply
        (["--seed", "5", "--seeds", "0", "1"], "--seed 5 and --seeds 0 1: give one of them"),
        (["--algo", "rl2"], "--num_epochs does not apply to --algo rl2"),
        (["--rl2.iterations", "3"], "--rl2.iterations does not apply to --algo mbrl"),
        (["--executor", "ray", "--ray_address", "127.0.0.1:1"], "--ray_address 127.0.0.1:1: no Ray cluster answers"),
    ],
)
def test_the_reported_bad_values_are_one_line_errors_before_any_work(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        cli.main([*TINY, *flags, "--out_dir", str(tmp_path / "never")])
    assert refused.value.code == 2 and not (tmp_path / "never").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].endswith(" --help)"), lines


def test_no_control_with_rl2_is_refused_naming_why(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--algo", "rl2", "--no-control", "--quick", "--out_dir", str(tmp_path / "never")])
    error = capsys.readouterr().err
    assert "--no-control does not apply to --algo rl2, which reads --rl2.* and the task counts" in error
    assert not (tmp_path / "never").exists()


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=flag_and_value(), second=flag_and_value())
def test_two_flags_together_are_refused_in_one_line_or_run(first, second, tmp_path_factory, capsys):
    """Pairs reach the checks that relate settings (a count against another, a flag against --algo)."""
    if first[0] == second[0]:
        return
    out_dir = tmp_path_factory.mktemp("run") / "out"
    flags = [*TINY, first[0], *first[1].split(" "), second[0], *second[1].split(" "), "--out_dir", str(out_dir)]
    try:
        cli.main(flags)
    except SystemExit as refused:
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert refused.code == 2 and not out_dir.exists(), (first, second, error)
        assert "error: " in error and re.search(r"--[a-z_.0-9]+", error), f"{first} {second}: {error}"
        return
    capsys.readouterr()
    assert (out_dir / "metrics.json").is_file(), (first, second)
