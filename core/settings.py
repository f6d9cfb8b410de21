"""Settings as dataclass fields: each one's default, help line and rule in one place, and one way to change them.

    @dataclass(frozen=True)
    class PlannerConfig:
        horizon: int = setting(15, "steps H per candidate sequence", integer(1))

        def __post_init__(self) -> None:
            check_settings(self)

    override(config, {"horizon": 25, "planner": {"num_candidates": 200}})   # JSON-like changes, nested groups too

A value a rule refuses raises `SettingError`, whose message always reads "<name> must be <expected>, got
<value>". Inside a nested group the name grows its path ("planner.horizon"), and the command line, which
`pipeline.flags` generates from the same fields, prints it as the flag ("--planner.horizon must be ...").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any


class SettingError(ValueError):
    """A setting given a value it cannot take: "<name> must be <expected>, got <value>"."""

    def __init__(self, name: str, expected: str, value: Any) -> None:
        super().__init__(f"{name} must be {expected}, got {value!r}")
        self.name, self.expected, self.value = name, expected, value

    def within(self, group: str) -> SettingError:
        """The same error named from the enclosing settings: "horizon" -> "planner.horizon"."""
        return SettingError(f"{group}.{self.name}", self.expected, self.value)


@dataclass(frozen=True)
class Rule:
    """What values a setting takes: `accepts(value)`, and `expected`, the words an error uses for them."""

    accepts: Callable[[Any], bool]
    expected: str
    choices: tuple[Any, ...] | None = None  # for a rule that is a list of values: the command line offers them


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int) -> Rule:
    return Rule(lambda value: is_int(value) and value >= minimum, f"an int >= {minimum}")


def number(
    low: float | None = None, high: float | None = None, *, open_low: bool = False, open_high: bool = False
) -> Rule:
    """A finite number within [low, high] (either bound left out: unbounded; `open_*`: the bound excluded)."""

    def accepts(value: Any) -> bool:
        if not is_number(value):
            return False
        above = low is None or (value > low if open_low else value >= low)
        below = high is None or (value < high if open_high else value <= high)
        return above and below

    if low is not None and high is not None:
        words = f"a finite number in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    elif low is not None:
        words = f"a finite number {'>' if open_low else '>='} {low}"
    elif high is not None:
        words = f"a finite number {'<' if open_high else '<='} {high}"
    else:
        words = "a finite number"
    return Rule(accepts, words)


def positive() -> Rule:
    return number(0, open_low=True)


def one_of(choices: Sequence[Any]) -> Rule:
    choices = tuple(choices)
    return Rule(lambda value: value in choices, f"one of {', '.join(map(str, choices))}", choices)


def optional(rule: Rule) -> Rule:
    """`rule`, or None (the setting switched off)."""
    return Rule(lambda value: value is None or rule.accepts(value), f"none or {rule.expected}", rule.choices)


def require(accepted: bool, name: str, expected: str, value: Any) -> None:
    """Raise SettingError(name, expected, value) unless `accepted`: the check of a rule across several settings."""
    if not accepted:
        raise SettingError(name, expected, value)


def setting(default: Any, help: str, rule: Rule | None = None) -> Any:  # noqa: A002  (argparse's word)
    """A dataclass field with its command-line help and the rule its values follow."""
    metadata = {"help": help, "rule": rule}
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_settings(config: Any) -> None:
    """Every field of the dataclass `config` against its rule (`setting`); SettingError for the first refused."""
    for item in fields(config):
        rule = item.metadata.get("rule")
        value = getattr(config, item.name)
        if rule is not None and not rule.accepts(value):
            raise SettingError(item.name, rule.expected, value)


def override(config: Any, values: Mapping[str, Any]) -> Any:
    """`config` with `values` as JSON gives them: setting -> value, a nested group's as an object of its own
    settings, a tuple as a list. The new values are checked (each dataclass's `__post_init__`): SettingError
    names the setting by its path; an unknown name is a ValueError listing the known ones."""
    known = {item.name for item in fields(config)}
    changes = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"{name!r} is not a setting of {type(config).__name__}: expected one of {sorted(known)}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise SettingError(name, "an object of its own settings (a group)", value)
            try:
                value = override(current, value)
            except SettingError as error:
                raise error.within(name) from None
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[name] = value
    return replace(config, **changes)


def differences(saved: Any, requested: Any, group: str = "") -> list[tuple[str, Any, Any]]:
    """(path, saved value, requested value) of every setting in which two configs of one dataclass differ."""
    found = []
    for item in fields(saved):
        before, after = getattr(saved, item.name), getattr(requested, item.name)
        if dataclasses.is_dataclass(before):
            found += differences(before, after, f"{group}{item.name}.")
        elif before != after:
            found.append((f"{group}{item.name}", before, after))
    return found
