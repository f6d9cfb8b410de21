"""Every setting of a pipeline run in one place: `PipelineConfig`, its nested planner and test-time groups, the
`--quick` smoke sizes, and the command line generated from the fields (type, default and help in one spot).

    config = PipelineConfig(env_name="CartPole-v1", planner=PlannerConfig(horizon=25))
    parser = build_parser()                       # --num_epochs, --planner.horizon, --adapt.window, ...
    config = config_from_args(parser.parse_args(["--planner.horizon", "25"]))

Validation lives in `__post_init__`, so a programmatic `run(config)` is checked as the command line is.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from meta_rl.rl2 import RL2Config
from planning.planner import PlannerConfig


def setting(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002  (argparse's word)
    """A dataclass field with its command-line help."""
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata={"help": help, **extra})
    return field(default=default, metadata={"help": help, **extra})


def _require(condition: bool, name: str, message: str, value: Any) -> None:
    if not condition:
        raise ValueError(f"{name} {message}, got {value!r}")


@dataclass(frozen=True)
class TestTimeConfig:
    """Online test-time adaptation while the planner acts: MetaMAML's inner step (its learned rates, subset
    and clip) on the last `window` transitions every `update_every` steps, restarting from theta*."""

    __test__ = False  # not a pytest test class

    num_steps: int = setting(1, "inner steps per test-time update (0: memory only)")
    window: int = setting(16, "transitions adapted on (the support size of meta-training by default)")
    update_every: int = setting(5, "environment steps between two updates")
    window_state: str = setting(
        "zero", "state the window starts from: zero (as meta-trained) or carried", choices=("zero", "carried")
    )
    max_loss_increase: float | None = setting(
        1.0, "roll back an update whose window loss exceeds this factor times the loss at theta* (none: off)"
    )

    def __post_init__(self) -> None:
        _require(self.num_steps >= 0, "adapt.num_steps", "must be >= 0", self.num_steps)
        _require(
            self.window >= 1 and self.update_every >= 1,
            "adapt.window and adapt.update_every",
            "must be >= 1",
            (self.window, self.update_every),
        )
        _require(
            self.max_loss_increase is None or self.max_loss_increase >= 1,
            "adapt.max_loss_increase",
            "must be >= 1 or none",
            self.max_loss_increase,
        )


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one pipeline run (saved as config.json; a resumed run must match them exactly)."""

    env_name: str = setting("Pendulum-v1", "gymnasium id with a task family")
    seed: int = setting(0, "seeds torch, numpy and the environments")
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    algo: str = setting(
        "mbrl",
        "mbrl: meta-learned SSM world model + MPC planner; rl2: RL² policy (PPO, memory across a trial's episodes)",
        choices=("mbrl", "rl2"),
    )
    # tasks and data
    num_train_tasks: int = setting(40, "meta-training tasks")
    num_val_tasks: int = setting(10, "validation tasks: every selection the pipeline makes uses these")
    num_test_tasks: int = setting(10, "held-out test tasks inside the training coefficient box")
    num_ood_tasks: int = setting(10, "tasks outside the training coefficient box")
    steps_per_task: int = setting(400, "random-policy steps collected on each task")
    # world model
    input_dim: int | None = setting(None, "world-model input width; must equal the family's (default: that width)")
    state_dim: int = setting(64, "SSM state size")
    hidden_dim: int = setting(64, "SSM hidden width")
    # meta-training
    num_epochs: int = setting(10, "meta-training epochs")
    iterations_per_epoch: int = setting(100, "meta-updates per epoch")
    meta_batch_size: int = setting(16, "tasks per meta-update")
    windows_per_task: int = setting(4, "support/query windows per task in a meta-update")
    support_len: int = setting(16, "support window length M")
    query_len: int = setting(16, "query window length K")
    inner_lr: float = setting(0.05, "inner-loop SGD learning rate")
    outer_lr: float = setting(1e-3, "outer-loop Adam learning rate")
    num_inner_steps: int = setting(1, "inner steps per meta-update")
    first_order: bool = setting(False, "first-order MAML (no second derivatives)")
    learn_inner_lr: bool = setting(False, "Meta-SGD: learn one inner rate per weight, starting at inner_lr")
    grad_clip_norm: float = setting(10.0, "outer gradient-norm clip")
    inner_grad_clip: float = setting(10.0, "inner-loop and test-time gradient-norm cap")
    # evaluation
    eval_windows_per_task: int = setting(8, "held-out windows per task for prediction MSE")
    eval_steps: tuple[int, ...] = setting((0, 1, 5), "adaptation steps at which prediction MSE is reported")
    # control
    control: bool = setting(True, "on-policy collection and the control evaluation (--no-control skips both)")
    control_tasks: int = setting(10, "test (and OOD) tasks the control evaluation runs on")
    control_episodes: int = setting(3, "episodes per task and condition (same reset seeds in every condition)")
    episode_steps: int = setting(200, "steps per control episode")
    onpolicy_rounds: int = setting(2, "last epochs that first collect on-policy data with the planner")
    onpolicy_steps: int = setting(200, "steps per on-policy row (every training row has this length)")
    onpolicy_tasks: int = setting(8, "training tasks per on-policy round")
    # 100 candidates: on 10 Pendulum val tasks CEM on the true dynamics returned -175 with 100 and -182 with 200
    # (3 iterations, horizon 15), at half the compute
    planner: PlannerConfig = setting(PlannerConfig(horizon=15, num_candidates=100, num_iterations=3), "CEM planner")
    adapt: TestTimeConfig = setting(TestTimeConfig(), "test-time adaptation")
    # --algo rl2 (uses env_name, seed and the task counts above; trains on the CPU)
    rl2_memory: str = setting("ssm", "the RL² policy's memory", choices=("ssm", "gru"))
    rl2: RL2Config = setting(  # tuned on PointNavigation-v0's val tasks; 3.5 to 7 minutes on 2 busy cores
        RL2Config(iterations=500, learning_rate=3e-3, ent_coef=0.0, reward_scale=0.1), "RL² training and evaluation"
    )

    def __post_init__(self) -> None:
        for name in (
            "num_train_tasks",
            "num_epochs",
            "iterations_per_epoch",
            "state_dim",
            "hidden_dim",
            "num_inner_steps",
            "meta_batch_size",
            "windows_per_task",
            "support_len",
            "query_len",
            "eval_windows_per_task",
            "control_episodes",
            "episode_steps",
            "onpolicy_steps",
        ):
            _require(getattr(self, name) >= 1, name, "must be >= 1", getattr(self, name))
        for name in (
            "num_val_tasks",
            "num_test_tasks",
            "num_ood_tasks",
            "control_tasks",
            "onpolicy_rounds",
            "onpolicy_tasks",
        ):
            _require(getattr(self, name) >= 0, name, "must be >= 0", getattr(self, name))
        _require(self.seed >= 0, "seed", "must be >= 0", self.seed)
        _require(
            self.inner_lr > 0 and self.outer_lr > 0,
            "inner_lr and outer_lr",
            "must be positive",
            (self.inner_lr, self.outer_lr),
        )
        _require(
            self.support_len + self.query_len <= self.onpolicy_steps,
            "support_len + query_len",
            f"must fit in a row of onpolicy_steps={self.onpolicy_steps}",
            self.support_len + self.query_len,
        )
        _require(
            self.steps_per_task % self.onpolicy_steps == 0,
            "steps_per_task",
            f"must be a multiple of onpolicy_steps={self.onpolicy_steps}",
            self.steps_per_task,
        )
        _require(self.input_dim is None or self.input_dim >= 1, "input_dim", "must be >= 1", self.input_dim)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PipelineConfig:
        values = dict(values)
        values["eval_steps"] = tuple(values["eval_steps"])
        values["planner"] = PlannerConfig(**values["planner"])
        values["adapt"] = TestTimeConfig(**values["adapt"])
        if "rl2" in values:
            values["rl2"] = RL2Config(**values["rl2"])
        return cls(**values)


QUICK_SIZES = {
    "num_train_tasks": 6,
    "num_val_tasks": 2,
    "num_test_tasks": 3,
    "num_ood_tasks": 3,
    "steps_per_task": 64,
    "state_dim": 16,
    "hidden_dim": 16,
    "num_epochs": 2,
    "iterations_per_epoch": 5,
    "meta_batch_size": 4,
    "windows_per_task": 2,
    "support_len": 8,
    "query_len": 8,
    "eval_windows_per_task": 2,
    "control_tasks": 2,
    "control_episodes": 2,
    "episode_steps": 20,
    "onpolicy_rounds": 1,
    "onpolicy_steps": 16,
    "onpolicy_tasks": 2,
    "planner": PlannerConfig(horizon=5, num_candidates=32, num_iterations=2),
    "adapt": TestTimeConfig(window=8, update_every=4),
    "rl2": RL2Config(iterations=2, trials_per_iteration=4, num_minibatches=2, update_epochs=2, hidden_dim=16),
}


_LOCOMOTION = {
    "num_train_tasks": 30,
    "steps_per_task": 400,
    "hidden_dim": 128,
    "episode_steps": 100,
    "onpolicy_steps": 100,
    "control_episodes": 2,
    "planner": PlannerConfig(horizon=10, num_candidates=200, num_iterations=3),
}

# chosen on HalfCheetahCrippled-v0's val tasks; Hopper's and the Ant's val tasks preferred it to the shared row
_META_SGD_TRAINING = {"learn_inner_lr": True, "iterations_per_epoch": 300, "steps_per_task": 2400}

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # MuJoCo locomotion: 100-step control episodes (the environments' limit is 1000) and a shorter horizon keep a
    # single-seed run within 15 minutes on 2 CPU cores. Each row adds what the family's val tasks chose
    # (experiments/select_defaults.py, records in docs/results/selection/); the crippled cheetah is the only
    # family whose planner was selected
    "HalfCheetah-v5": {**_LOCOMOTION, "learn_inner_lr": True, "iterations_per_epoch": 600, "steps_per_task": 1200},
    "Hopper-v5": {**_LOCOMOTION, **_META_SGD_TRAINING},
    "HalfCheetahCrippled-v0": {
        **_LOCOMOTION,
        **_META_SGD_TRAINING,
        "planner": PlannerConfig(horizon=10, num_candidates=500, num_iterations=3),
    },
    "AntCrippled-v0": {**_LOCOMOTION, **_META_SGD_TRAINING},
}


def defaults_for(env_name: str, quick: bool = False) -> PipelineConfig:
    """The defaults of `env_name`: PipelineConfig's, then its family's row of FAMILY_DEFAULTS, then the
    --quick sizes."""
    config = replace(PipelineConfig(env_name=env_name), **FAMILY_DEFAULTS.get(env_name, {}))
    return replace(config, **QUICK_SIZES) if quick else config


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """`config` with `overrides` as JSON gives them (field -> value, a nested group's as an object, a tuple as a
    list); ValueError names an unknown field, and `__post_init__` checks the values."""
    known = {item.name for item in fields(config)}
    changes = {}
    for name, value in overrides.items():
        if name not in known:
            raise ValueError(f"unknown setting {name!r} for {type(config).__name__}: expected one of {sorted(known)}")
        current = getattr(config, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{name} is a group of settings: expected a JSON object, got {value!r}")
            value = apply_overrides(current, value)
        elif isinstance(current, tuple):
            value = tuple(value)
        changes[name] = value
    return replace(config, **changes)


def with_overrides(config: PipelineConfig, **values: Any) -> PipelineConfig:
    """`config` with the given fields replaced; None values are ignored (flags not given)."""
    return replace(config, **{key: value for key, value in values.items() if value is not None})


# ----------------------------------------------------------------------------- command line
def add_config_arguments(
    parser: argparse.ArgumentParser, config_type: type = PipelineConfig, prefix: str = "", defaults: Any = None
) -> None:
    """One flag per field (`--name`, `--group.name` for nested groups), default None = not given. The help
    shows `defaults`' values (a nested group's defaults are those of the enclosing config's instance)."""
    hints = typing.get_type_hints(config_type)
    defaults = config_type() if defaults is None else defaults
    for item in fields(config_type):
        kind = hints[item.name]
        default = getattr(defaults, item.name)
        if dataclasses.is_dataclass(kind):
            add_config_arguments(parser, kind, f"{prefix}{item.name}.", default)
            continue
        flag = f"--{prefix}{item.name}"
        text = f"{item.metadata['help']} (default {default})"
        kwargs: dict[str, Any] = {"dest": f"{prefix}{item.name}", "default": None, "help": text}
        base, optional = _base_type(kind)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if typing.get_origin(base) is tuple:
            kwargs.update(nargs="+", type=int)
        else:
            kwargs["type"] = _none_or(base) if optional else base
        if "choices" in item.metadata:
            kwargs["choices"] = item.metadata["choices"]
        parser.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, base: PipelineConfig) -> PipelineConfig:
    """`base` with every flag that was given; raises ValueError (naming the field) for invalid values."""
    values = vars(args)
    return _override(base, values, "")


def _override(config: Any, values: dict, prefix: str) -> Any:
    changes = {}
    for item in fields(config):
        current = getattr(config, item.name)
        if dataclasses.is_dataclass(current):
            changes[item.name] = _override(current, values, f"{prefix}{item.name}.")
        elif values.get(f"{prefix}{item.name}") is not None:
            given = values[f"{prefix}{item.name}"]
            changes[item.name] = None if given is _NONE else tuple(given) if isinstance(given, list) else given
    return replace(config, **changes)


_NONE = object()


def _none_or(kind: type):
    def parse(text: str):
        return _NONE if text.lower() == "none" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _base_type(kind: Any) -> tuple[Any, bool]:
    """(type, optional) of a field annotation such as `float | None`."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        return members[0], True
    return kind, False
