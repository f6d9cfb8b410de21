"""The command line, generated from the settings' fields: one flag per setting, `--group.name` inside a nested
group, the help line and choices from the field, and the flags shared by every program that runs pipelines.

    parser = argparse.ArgumentParser()
    add_setting_flags(parser)                        # --env_name, --num_epochs, --planner.horizon, --adapt.window ...
    add_program_flags(parser)                        # --quick, --no_progress, --threads, --jobs, --executor ...
    args = parser.parse_args(argv)
    config = config_from_flags(parser, args)         # parser.error names a refused flag
    executor = executor_from_flags(parser, args)

A flag that is not given leaves the setting at its default for the family (`defaults_for`), so a family's row
and the flags layer cleanly. This is our own small generator rather than `tyro`, which builds the same flags
from nested dataclasses: the family's defaults are known only once `--env_name`, `--quick` and `--protocol` are
read, which tyro would need a second parse for, and tyro reports errors in wrapped panels, where ours stay the one line
"--<flag> must be ..., got ..." that `core.settings` words.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import types
import typing
from dataclasses import fields
from typing import Any

import torch

from core import threads
from core.settings import SettingError, override
from env_runner.protocols import COEFFICIENTS
from pipeline.config import MBRL_SETTINGS, RL2_SETTINGS, PipelineConfig, defaults_for
from pipeline.executor import Executor, available_cores


def add_setting_flags(parser: argparse.ArgumentParser, config_type: type = PipelineConfig, group: str = "") -> None:
    """One flag per field of `config_type` (nested dataclasses as `--group.name`), default None = not given."""
    hints = typing.get_type_hints(config_type)
    defaults = config_type()
    for item in fields(config_type):
        kind, default, name = hints[item.name], getattr(defaults, item.name), f"{group}{item.name}"
        if dataclasses.is_dataclass(kind):
            add_setting_flags(parser, kind, f"{name}.")
            continue
        options: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": item.metadata["help"]
            if "default" in item.metadata["help"]
            else f"{item.metadata['help']} (default {default})",
        }
        base, can_be_none = _base_type(kind)
        if base is bool:
            parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, **options)
            continue
        if typing.get_origin(base) is tuple:
            options.update(nargs="+", type=typing.get_args(base)[0])
        else:
            options["type"] = _none_or(base) if can_be_none else base
        rule = item.metadata.get("rule")
        if rule is not None and rule.choices is not None:
            options["choices"] = rule.choices
        parser.add_argument(f"--{name}", **options)


FOLLOWING = (
    "every core while no other process keeps one busy, fewer while others do, re-measured every few seconds "
    "(core.threads); max(1, cores // jobs) with --jobs"
)


def add_program_flags(parser: argparse.ArgumentParser, threads: int | None = None) -> None:
    """--quick, --no_progress, --threads (default `threads`: None follows the machine's load in this process and
    uses max(1, cores // jobs) in workers) and the executor's --jobs, --executor and --ray_address."""
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke configuration (tiny sizes)")
    parser.add_argument(
        "--no_progress",
        action="store_true",
        help="hide the progress (bars, stage lines); the results are still printed",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=threads,
        help=f"torch threads per run (default {threads or FOLLOWING})",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at once in local worker processes (default 1)")
    parser.add_argument(
        "--executor", choices=("local", "ray"), default="local", help="local processes, or Ray tasks (the ray extra)"
    )
    parser.add_argument("--ray_address", help="the Ray cluster to join, e.g. auto (default: a local Ray instance)")


def given_settings(args: argparse.Namespace, config_type: type = PipelineConfig, group: str = "") -> dict[str, Any]:
    """The settings whose flags were given, as `override` takes them: {"num_epochs": 3, "planner": {...}}."""
    values = vars(args)
    given: dict[str, Any] = {}
    hints = typing.get_type_hints(config_type)
    for item in fields(config_type):
        name = f"{group}{item.name}"
        if dataclasses.is_dataclass(hints[item.name]):
            nested = given_settings(args, hints[item.name], f"{name}.")
            if nested:
                given[item.name] = nested
        elif values.get(name) is not None:
            value = values[name]
            given[item.name] = None if value is _NONE else tuple(value) if isinstance(value, list) else value
    return given


def config_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> PipelineConfig:
    """The family's defaults (`--quick` sizes when asked) with every given flag; a refused value is the parser's
    error naming the flag."""
    given = given_settings(args)
    algo = args.algo or PipelineConfig().algo
    applicable = RL2_SETTINGS if algo == "rl2" else MBRL_SETTINGS
    for name in given:
        if name not in applicable:
            flag = next(iter(_flags(name, given[name])))
            reads = "--rl2.* and the task counts" if algo == "rl2" else "everything but --rl2.* and --rl2_memory"
            parser.error(f"{flag} does not apply to --algo {algo}, which reads {reads}: leave it out")
    try:
        defaults = defaults_for(args.env_name or PipelineConfig().env_name, args.quick, args.protocol or COEFFICIENTS)
        return override(defaults, given)
    except SettingError as error:
        parser.error(f"--{error}")
    except ValueError as error:
        parser.error(str(error))


def _flags(name: str, value: Any) -> list[str]:
    """The flags of a given setting: --name, or --group.member for each member given of a nested group."""
    if isinstance(value, dict):
        return [f"--{name}.{member}" for member in value]
    return [f"--{name}" if value is not False else f"--no-{name}"]


def executor_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Executor:
    """The executor the flags ask for; sets this process's torch threads (--threads) for runs it runs itself."""
    try:
        executor = Executor(args.executor, args.jobs, args.threads, args.ray_address)
        executor.check_available()
    except SettingError as error:
        parser.error(f"--{error}")
    except RuntimeError as error:
        parser.error(str(error))
    cores = available_cores()
    if args.threads is not None and args.executor == "local" and args.threads > cores:
        parser.error(f"--threads must be at most {cores} (the cores this process may run on), got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return executor


def threads_from_flags(args: argparse.Namespace, executor: Executor) -> contextlib.AbstractContextManager:
    """While the runs of this process run: torch's threads following the machine's load, unless --threads fixed
    them or the runs go to workers (each with its own count)."""
    if args.threads is None and executor.in_process:
        return threads.following_load(available_cores())
    return contextlib.nullcontext()


_NONE = object()  # "--flag none": the setting switched off, unlike a flag not given


def _none_or(kind: type):
    def parse(text: str):
        return _NONE if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in "invalid float value"
    return parse


def _base_type(kind: Any) -> tuple[Any, bool]:
    """(type, whether None is allowed) of a field annotation such as `float | None`."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        return members[0], True
    return kind, False
