"""Published evaluation protocols as data: which tasks a family trains on and which it is tested on.

A protocol is a table per environment id (`ProtocolTable`), never a code path:

- `train`: each task parameter's set of training values (the names of `Task.params`); a task is one combination;
- `fixed`: the parameters every task of the protocol holds (CartPole's pole mass);
- `test_settings`: the protocol's test settings, each a set of values per parameter. The OOD split holds every
  combination of every setting, interleaved setting by setting (the first k OOD tasks cover the settings evenly),
  and a combination that two settings share appears once and counts in both;
- `held_out`: how many training combinations the val and test splits hold out of training (no task is in two
  splits, so these are not trained on); the train split draws from the rest;
- `episode_steps` (the time limit), `reset_state` (uniform ranges of the environment's `state` after every reset;
  None keeps the environment's own start) and `episodes_per_setting` (what the protocol averages per test setting).

The default, `COEFFICIENTS`, is this library's own: the coefficient-space boxes of `env_runner.tasks`, no table.

    family = make_task_family("Pendulum-v1", protocol="cadm")   # tasks from CaDM's sets, hanging-down starts
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

Range = tuple[float, float]
COEFFICIENTS = "coefficients"


def value_grid(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start + step, ..., stop (inclusive), rounded to 1e-9 so that tables read as written."""
    count = round((stop - start) / step) + 1
    return tuple(round(start + index * step, 9) for index in range(count))


@dataclass(frozen=True)
class ProtocolTable:
    """One family under a protocol (see the module docstring)."""

    train: Mapping[str, tuple[float, ...]]
    test_settings: tuple[Mapping[str, tuple[float, ...]], ...]
    held_out: Mapping[str, int]
    episode_steps: int
    episodes_per_setting: int
    fixed: Mapping[str, float] = field(default_factory=dict)
    reset_state: tuple[Range, ...] | None = None

    def training_combinations(self) -> list[dict[str, float]]:
        """Every combination of the training sets, in table order."""
        return _combinations(self.train, self.fixed)

    def setting_combinations(self) -> list[list[dict[str, float]]]:
        """Every combination of each test setting, in table order."""
        return [_combinations(setting, self.fixed) for setting in self.test_settings]

    def ood_params(self) -> list[dict[str, float]]:
        """The OOD split: each setting's combinations interleaved (setting 0's first, setting 1's first, ...),
        a combination shared by two settings kept once."""
        unique: dict[tuple, dict[str, float]] = {}
        for combination in itertools.chain(*itertools.zip_longest(*self.setting_combinations())):
            if combination is not None:
                unique.setdefault(tuple(sorted(combination.items())), combination)
        return list(unique.values())

    def settings_of(self, params: Mapping[str, float]) -> list[int]:
        """The test settings whose sets hold every value of `params` (empty for a training combination)."""
        return [
            index
            for index, setting in enumerate(self.test_settings)
            if all(params[name] in values for name, values in setting.items())
        ]

    def split_params(self, seed: int) -> dict[str, list[dict[str, float]]]:
        """The train pool, val and test (held-out training combinations) of `seed`, and the OOD split. The held-out
        combinations come from a permutation of the training combinations drawn from a stream of their own."""
        combinations = self.training_combinations()
        order = np.random.default_rng(np.random.SeedSequence([seed, PROTOCOL_STREAM])).permutation(len(combinations))
        shuffled = [combinations[index] for index in order]
        val, test = self.held_out.get("val", 0), self.held_out.get("test", 0)
        return {
            "val": shuffled[:val],
            "test": shuffled[val : val + test],
            "train": shuffled[val + test :],
            "ood": self.ood_params(),
        }

    def setting_means(self, params: list[Mapping[str, float]], per_task: list[float]) -> list[float | None]:
        """Each test setting's mean of `per_task` over the tasks (`params`, in the same order) that belong to it, as
        the protocol averages a setting's episodes; None for a setting no task belongs to."""
        means = []
        for index in range(len(self.test_settings)):
            values = [value for task, value in zip(params, per_task, strict=True) if index in self.settings_of(task)]
            means.append(float(np.mean(values)) if values else None)
        return means

    def as_record(self) -> dict:
        """The table as plain JSON values (for metrics.json)."""
        record = asdict(self)
        record["test_settings"] = [dict(setting) for setting in self.test_settings]
        return record


PROTOCOL_STREAM = 7  # the SeedSequence stream of a protocol's held-out combinations (env_runner.tasks uses 0-3)


def _combinations(sets: Mapping[str, tuple[float, ...]], fixed: Mapping[str, float]) -> list[dict[str, float]]:
    names = list(sets)
    return [{**fixed, **dict(zip(names, values, strict=True))} for values in itertools.product(*sets.values())]


@dataclass(frozen=True)
class Protocol:
    """A named protocol: its source, one table per environment id, and its sample budget: `iterations` of
    `episodes_per_iteration` episodes each, the first with random actions (the model-based loop's; None: none
    published)."""

    name: str
    source: str
    tables: Mapping[str, ProtocolTable]
    iterations: int | None = None
    episodes_per_iteration: int | None = None

    def table(self, env_id: str) -> ProtocolTable:
        if env_id not in self.tables:
            raise ValueError(f"the {self.name} protocol has no table for {env_id}: it defines {', '.join(self.tables)}")
        return self.tables[env_id]


_CADM_SCALES = (0.75, 0.85, 1.0, 1.15, 1.25)

# Lee et al. 2020, "Context-aware Dynamics Model for Generalization in Model-Based RL" (ICML), read from their public
# configuration (younggyoseo/CaDM, cadm/envs/config.py) and environments (cadm/envs/*): every parameter is drawn
# from a set at each reset there; here each combination is a task. Test: 10 episodes per setting (20 for the
# crippled cheetah and the Ant), the overall figure the unweighted mean over settings.
CADM = Protocol(
    name="cadm",
    source="Lee et al. 2020 (CaDM), ICML; younggyoseo/CaDM cadm/envs/config.py",
    iterations=20,  # 200,000 steps of the MuJoCo environments' 1000-step episodes (the paper's section 5)
    episodes_per_iteration=10,
    tables={
        "Pendulum-v1": ProtocolTable(
            train={"m": value_grid(0.75, 1.25, 0.05), "l": value_grid(0.75, 1.25, 0.05)},
            fixed={"g": 10.0},
            test_settings=(
                {"m": (0.2, 0.4), "l": (1.6, 1.8)},
                {"m": (0.5, 0.7), "l": (1.3, 1.5)},
                {"m": (1.3, 1.5), "l": (0.5, 0.7)},
                {"m": (1.6, 1.8), "l": (0.2, 0.4)},
            ),
            held_out={"val": 10, "test": 10},
            episode_steps=200,
            episodes_per_setting=10,
            reset_state=((7 * np.pi / 8, 9 * np.pi / 8), (-0.2, 0.2)),  # theta (0 upright), theta dot: hanging down
        ),
        "CartPole-v1": ProtocolTable(
            train={"force_mag": value_grid(5.0, 15.0, 1.0), "length": value_grid(0.40, 0.60, 0.05)},
            fixed={"masspole": 0.1, "masscart": 1.0},
            test_settings=(
                {"force_mag": (2.0, 2.5), "length": (0.15, 0.20)},
                {"force_mag": (3.0, 3.5), "length": (0.25, 0.30)},
                {"force_mag": (16.5, 17.0), "length": (0.70, 0.75)},
                {"force_mag": (17.5, 18.0), "length": (0.80, 0.85)},
            ),
            held_out={"val": 10, "test": 10},  # 55 combinations: 35 remain for training
            episode_steps=200,
            episodes_per_setting=10,
        ),
        "HalfCheetah-v5": ProtocolTable(
            train={"mass_scale": _CADM_SCALES, "damping_scale": _CADM_SCALES},
            test_settings=tuple(
                {"mass_scale": values, "damping_scale": values}
                for values in ((0.2, 0.3), (0.4, 0.5), (1.5, 1.6), (1.7, 1.8))
            ),
            held_out={"val": 4, "test": 6},  # 25 combinations: 15 remain for training
            episode_steps=1000,
            episodes_per_setting=10,
        ),
        "HalfCheetahCrippled-v0": ProtocolTable(
            train={"crippled_joint": (0.0, 1.0, 2.0, 3.0)},
            fixed={"crippled_scale": 0.0},
            test_settings=({"crippled_joint": (4.0, 5.0)},),
            held_out={},  # 4 combinations, all trained on: no val or in-distribution test split
            episode_steps=1000,
            episodes_per_setting=20,
        ),
        "AntMass-v0": ProtocolTable(
            train={"mass_scale": (0.85, 0.90, 0.95, 1.0)},
            fixed={"damping_scale": 1.0},
            test_settings=(
                {"mass_scale": value_grid(0.20, 0.40, 0.05)},
                {"mass_scale": value_grid(0.40, 0.60, 0.05)},
            ),
            held_out={},  # 4 combinations, all trained on: no val or in-distribution test split
            episode_steps=1000,
            episodes_per_setting=20,
        ),
    },
)

PROTOCOLS: dict[str, Protocol] = {CADM.name: CADM}


def protocol_record(name: str, env_id: str) -> dict:
    """What metrics.json records of a run's protocol: its name, and for a published one its source and table."""
    table = protocol_table(name, env_id)
    if table is None:
        return {"name": name}
    return {"name": name, "source": PROTOCOLS[name].source, "table": table.as_record()}


def protocol_table(name: str, env_id: str) -> ProtocolTable | None:
    """The table of `env_id` under protocol `name` (None for `COEFFICIENTS`); ValueError naming what exists."""
    if name == COEFFICIENTS:
        return None
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}: expected {COEFFICIENTS} or one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name].table(env_id)


class ResetState(gym.Wrapper, RecordConstructorArgs):
    """Each reset draws the environment's `state` uniformly from `ranges` (one (low, high) per entry, with the
    environment's own generator, so a reset seed fixes it) and returns the observation of that state.

    For gymnasium's classic-control environments, whose `unwrapped.state` is the whole state and `_get_obs()` (or
    the state itself, where there is none) the observation: Pendulum's theta and theta dot, CartPole's four.
    """

    def __init__(self, env: gym.Env, ranges: tuple[Range, ...]) -> None:
        RecordConstructorArgs.__init__(self, ranges=ranges)
        gym.Wrapper.__init__(self, env)
        self.ranges = np.asarray(ranges, dtype=np.float64)  # (S, 2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _, info = self.env.reset(seed=seed, options=options)
        unwrapped = self.env.unwrapped
        if np.shape(unwrapped.state) != (len(self.ranges),):
            raise ValueError(
                f"{unwrapped.spec.id if unwrapped.spec else unwrapped}: a reset range per state entry was expected, "
                f"{len(self.ranges)} ranges for a state of shape {np.shape(unwrapped.state)}"
            )
        unwrapped.state = unwrapped.np_random.uniform(self.ranges[:, 0], self.ranges[:, 1])
        if hasattr(unwrapped, "_get_obs"):
            return unwrapped._get_obs(), info
        return np.array(unwrapped.state, dtype=np.float32), info
