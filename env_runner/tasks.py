"""Tasks and task families: distributions over the dynamics of one gymnasium environment.

A `Task` is one set of physical parameters. A `TaskFamily` samples tasks reproducibly and builds
gymnasium environments with a task's parameters applied (set on `env.unwrapped`).

Splits are defined by the *coefficients* the dynamics depend on (Pendulum: 3g/(2l) and 3/(m l^2), not g,
m and l), so that "out of distribution" means out of distribution for the dynamics:

- every family declares `coefficient_ranges`, the training box in coefficient space, and samples its
  "train", "val" and "test" tasks inside it (log-uniformly on coefficients in `log_coefficients`);
- "ood" tasks are drawn from the wider proposal box `ood_ranges` and kept only when they lie outside the
  training box by at least `OOD_MARGIN` of the box's width in some coefficient (measured on a log scale
  for the log coefficients): `TaskFamily.ood_margin(task) >= OOD_MARGIN`;
- a family turns sampled coefficients into environment parameters with `_params_from_coefficients`, and
  `coefficients(task)` maps them back (tests check the round trip, so the guarantees hold for the
  parameters the environment actually gets).

Each split has its own random stream (`SeedSequence([seed, split_id])`), and `check_disjoint` refuses
task lists that share a task. Concrete families live in `env_runner.families`.

Under a published protocol (`env_runner.protocols`, e.g. `protocol="cadm"`) a family's tasks come from the
protocol's table instead: train, val and test tasks are combinations of its training sets (val and test held out of
training), OOD tasks the combinations of its test settings; its time limit and reset distribution apply to every
environment the family makes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from env_runner.actions import action_dim, check_action_space
from env_runner.protocols import COEFFICIENTS, ProtocolTable, ResetState, protocol_table
from env_runner.rewards import RewardFn

Split = Literal["train", "val", "test", "ood"]
SPLIT_IDS: dict[str, int] = {"train": 0, "val": 3, "test": 1, "ood": 2}
OOD_MARGIN = 0.1  # an OOD task lies outside the training box by at least this share of its width
MAX_OOD_DRAWS = 10_000
Range = tuple[float, float]
TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # -> bool (...,)


@dataclass(frozen=True)
class Task:
    """One task of a family: `params` maps physical attribute names to values.

    `split` is "train", "val", "test", "ood" or "default" (the environment's own parameters) and `index`
    the position in the sample that produced it. Hashing ignores `params` (a dict); equality does not.
    """

    env_id: str
    split: str
    index: int
    params: dict[str, float] = field(hash=False)

    @property
    def key(self) -> tuple:
        """What identifies the task's physics: its sorted params (split and index when it has none)."""
        return tuple(sorted(self.params.items())) if self.params else (self.split, self.index)


class TaskInfo(gym.Wrapper, RecordConstructorArgs):
    """Adds `info["task_params"]` (the task's parameter dict) to the info of every reset.

    Only resets carry it: adding it to every step costs a fifth of the collection time of a
    vector env (which batches info dicts key by key), and the task cannot change within an episode.
    The task itself is `env.get_wrapper_attr("task")`. A seed given at construction seeds the first
    reset (and the action space) unless that reset passes its own seed.
    """

    def __init__(self, env: gym.Env, task: Task, seed: int | None = None) -> None:
        RecordConstructorArgs.__init__(self, task=task, seed=seed)
        gym.Wrapper.__init__(self, env)
        self.task = task
        self._first_reset_seed = seed
        if seed is not None:
            self.action_space.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = self._first_reset_seed
        self._first_reset_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        info["task_params"] = dict(self.task.params)
        return obs, info


class TaskFamily:
    """Distribution of tasks over one gymnasium environment id (see the module docstring).

    Subclasses set `param_names` (the environment attributes a task sets), `coefficient_ranges` (training
    box), `ood_ranges` (OOD proposal box), `log_coefficients` and `categorical_coefficients` (coefficients outside
    the box that take one of a few values, with all of them), and implement `_params_from_coefficients`
    and `_coefficients`; they override `reward_fn` (setting `has_reward_fn`) where the reward has a closed
    form, `termination_fn` where episodes can terminate, and `_apply_params` where the environment caches
    derived quantities.
    The base class itself is the single-task family used for any other gymnasium id: its tasks have
    empty params (the environment's own physics) and distinct indices, and it has no "ood" split.

    `protocol` names where tasks come from (`env_runner.protocols`; default the coefficient boxes above) and
    `make_kwargs` go to `gymnasium.make` (e.g. `max_episode_steps`; a protocol sets its own).
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    coefficient_ranges: ClassVar[Mapping[str, Range]] = {}
    ood_ranges: ClassVar[Mapping[str, Range]] = {}
    log_coefficients: ClassVar[frozenset[str]] = frozenset()
    # coefficients that name one of several values (a crippled motor): every value it can take, OOD ones too
    categorical_coefficients: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    has_reward_fn: ClassVar[bool] = False
    # whether the reward depends on the hidden task (a goal, a target velocity): world models then learn it
    reward_depends_on_task: ClassVar[bool] = False
    # whether every split draws different tasks (False for a family of a few tasks that every split shares)
    held_out_tasks: ClassVar[bool] = True
    # observation entries the dynamics do not depend on (absolute positions): world models predict their
    # change but do not take them as input
    translation_invariant_obs: ClassVar[tuple[int, ...]] = ()

    def __init__(self, env_id: str, protocol: str = COEFFICIENTS, **make_kwargs: Any) -> None:
        self.env_id = env_id
        self.protocol = protocol
        self.protocol_table: ProtocolTable | None = protocol_table(protocol, env_id)
        if self.protocol_table is not None:
            self._check_protocol_table(self.protocol_table)
            steps = make_kwargs.setdefault("max_episode_steps", self.protocol_table.episode_steps)
            if steps != self.protocol_table.episode_steps:
                raise ValueError(
                    f"the {protocol} protocol's {env_id} episodes last {self.protocol_table.episode_steps} steps, "
                    f"not max_episode_steps={steps}"
                )
        self.make_kwargs = make_kwargs
        reference = self._observations(gym.make(env_id, **make_kwargs))
        self.observation_space: spaces.Box = reference.observation_space
        self.action_space: spaces.Space = reference.action_space
        self.reference_env: gym.Env = reference.unwrapped
        reference.close()
        if not (isinstance(self.observation_space, spaces.Box) and len(self.observation_space.shape) == 1):
            raise ValueError(
                f"{env_id} has observation space {self.observation_space}: only 1-D Box observations are supported"
            )
        check_action_space(self.action_space)

    def _check_protocol_table(self, table: ProtocolTable) -> None:
        """ValueError unless the table sets exactly this family's parameters, and its test settings vary the
        parameters its training sets do."""
        named = set(table.train) | set(table.fixed)
        if named != set(self.param_names) or set(table.train) & set(table.fixed):
            raise ValueError(
                f"the {self.protocol} table of {self.env_id} sets {sorted(named)}: expected the family's parameters "
                f"{sorted(self.param_names)}, each either varied or fixed"
            )
        for setting in table.test_settings:
            if set(setting) != set(table.train):
                raise ValueError(
                    f"a {self.protocol} test setting of {self.env_id} varies {sorted(setting)}, "
                    f"training varies {sorted(table.train)}"
                )

    @property
    def has_task_distribution(self) -> bool:
        """Whether tasks differ from each other (False for the single-task family)."""
        return bool(self.coefficient_ranges)

    @property
    def obs_dim(self) -> int:
        return int(self.observation_space.shape[0])

    @property
    def action_dim(self) -> int:
        """Box dimension, or number of actions for a Discrete space (models take one-hot actions)."""
        return action_dim(self.action_space)

    @property
    def model_input_dim(self) -> int:
        """Width of a world model's input: the observation without `translation_invariant_obs`, and the action."""
        return self.obs_dim - len(self.translation_invariant_obs) + self.action_dim

    # ----------------------------------------------------------------- sampling
    @property
    def has_ood_split(self) -> bool:
        """Whether the family has tasks outside its training distribution (not the single-task family)."""
        return self.has_task_distribution

    def sample(self, n: int, seed: int, split: Split = "train") -> list[Task]:
        """`n` tasks of `split`, the same for the same (seed, split), from a stream of their own."""
        self._check_sample(n, split)
        if self.protocol_table is not None:
            return self._protocol_sample(self.protocol_table, n, seed, split)
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLIT_IDS[split]]))
        return [Task(self.env_id, split, index, self._sample_params(rng, split)) for index in range(n)]

    def _check_sample(self, n: int, split: str) -> None:
        """ValueError for an unknown split, an OOD split the family lacks, or a negative count."""
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}: expected one of {sorted(SPLIT_IDS)}")
        if split == "ood" and not self.has_ood_split:
            raise ValueError(f"{self.env_id} has no out-of-distribution split")
        if n < 0:
            raise ValueError(f"the number of tasks must be >= 0, received {n}")

    def _protocol_sample(self, table: ProtocolTable, n: int, seed: int, split: str) -> list[Task]:
        """The first `n` tasks of the protocol's `split` for `seed` (ValueError when it holds fewer)."""
        available = table.split_params(seed)[split]
        if n > len(available):
            raise ValueError(
                f"the {self.protocol} protocol's {self.env_id} {split} split holds {len(available)} tasks, "
                f"{n} were asked for"
            )
        return [Task(self.env_id, split, index, params) for index, params in enumerate(available[:n])]

    def _sample_params(self, rng: np.random.Generator, split: str) -> dict[str, float]:
        if not self.has_task_distribution:
            return {}
        if split != "ood":
            return self._params_from_coefficients(self._draw(rng, self.coefficient_ranges), rng)
        for _ in range(MAX_OOD_DRAWS):
            coefficients = self._draw(rng, self.ood_ranges)
            if self._margin(coefficients) >= OOD_MARGIN:
                return self._params_from_coefficients(coefficients, rng)
        raise RuntimeError(f"{self.env_id}: no OOD proposal in {MAX_OOD_DRAWS} lies outside the training box")

    def _draw(self, rng: np.random.Generator, ranges: Mapping[str, Range]) -> dict[str, float]:
        """Uniform (log-uniform for `log_coefficients`) coefficients inside `ranges`."""
        values = {}
        for name, (low, high) in ranges.items():
            if name in self.log_coefficients:
                values[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                values[name] = float(rng.uniform(low, high))
        return values

    def _params_from_coefficients(self, coefficients: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
        """Environment parameters realising `coefficients` (free parameters may be drawn from `rng`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _params_from_coefficients")

    # ----------------------------------------------------------------- coefficients
    def coefficients(self, task: Task) -> dict[str, float]:
        """What the task's dynamics depend on, e.g. Pendulum's gravity_term 3g/(2l) and control_gain 3/(m l^2)."""
        self._check_task(task)
        return self._coefficients(task.params) if self.has_task_distribution else {}

    def _coefficients(self, params: Mapping[str, float]) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must implement _coefficients")

    def ood_margin(self, task: Task) -> float:
        """How far `task` lies outside the training box: the largest distance beyond the box over the
        coefficients, in units of the box's width (log scale for log coefficients); <= 0 inside it."""
        return self._margin(self.coefficients(task))

    def _margin(self, coefficients: Mapping[str, float]) -> float:
        margins = []
        for name, (low, high) in self.coefficient_ranges.items():
            value = coefficients[name]
            if name in self.log_coefficients:
                value, low, high = math.log(value), math.log(low), math.log(high)
            margins.append(max(low - value, value - high) / (high - low))
        return max(margins)

    def default_task(self) -> Task:
        """The environment's own parameters as a task (split "default")."""
        params = {name: float(getattr(self.reference_env, name)) for name in self.param_names}
        return Task(self.env_id, "default", 0, params)

    # ----------------------------------------------------------------- environments
    def make_env(self, task: Task, seed: int | None = None) -> gym.Env:
        """A gymnasium env with `task.params` set on `env.unwrapped`, wrapped in `TaskInfo`.

        Use it as a context manager (`with family.make_env(task) as env:`) to close it.
        """
        self._check_task(task)
        env = self._observations(gym.make(self.env_id, **self.make_kwargs))
        unwrapped = env.unwrapped
        missing = [name for name in task.params if not hasattr(unwrapped, name)]
        if missing:
            env.close()
            raise AttributeError(f"{self.env_id} has no attributes {missing} to set from the task")
        self._apply_params(unwrapped, task.params)
        return self._wrap(env, task, seed)

    def _observations(self, env: gym.Env) -> gym.Env:
        """`env` as its observations reach models and policies: the environment's own (a family with discrete or
        structured observations flattens them to a 1-D Box)."""
        return env

    def _wrap(self, env: gym.Env, task: Task, seed: int | None) -> gym.Env:
        """`env` (the task's parameters applied) with the protocol's reset distribution, in `TaskInfo`."""
        if self.protocol_table is not None and self.protocol_table.reset_state is not None:
            env = ResetState(env, self.protocol_table.reset_state)
        return TaskInfo(env, task, seed=seed)

    def _apply_params(self, unwrapped: gym.Env, params: Mapping[str, float]) -> None:
        for name, value in params.items():
            setattr(unwrapped, name, value)

    def _check_task(self, task: Task) -> None:
        if task.env_id != self.env_id:
            raise ValueError(f"task of {task.env_id} given to the {self.env_id} family")

    def reward_fn(self, task: Task) -> RewardFn:
        """The task's reward as a torch function (obs, model action, next_obs) -> reward (...,)."""
        raise NotImplementedError(f"{self.env_id} has no closed-form reward function (has_reward_fn False)")

    def batch_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        """The reward of E episodes at once: transitions (E, C, ·), episode e under `tasks[e]` -> (E, C).

        The default serves families whose reward does not depend on the task; others override it.
        """
        return _shared(self.env_id, "reward", [self.reward_fn(task) for task in tasks])

    def planning_reward_fn(self, tasks: Sequence[Task]) -> RewardFn:
        """What a planner maximises for E episodes at once: `batch_reward_fn`, plus a documented shaping term in
        families whose reward a short horizon never sees (evaluation always counts the environment's reward)."""
        return self.batch_reward_fn(tasks)

    def batch_termination_fn(self, tasks: Sequence[Task]) -> TerminationFn | None:
        """`termination_fn` for E episodes at once (transitions (E, C, ·)); None when episodes never terminate."""
        functions = [self.termination_fn(task) for task in tasks]
        return None if functions[0] is None else _shared(self.env_id, "termination", functions)

    def termination_fn(self, task: Task) -> TerminationFn | None:
        """(obs, model action, next_obs) -> bool (...,): the transition ends the episode (next_obs is terminal).

        None for families whose episodes never terminate (only time limits end them).
        """
        return None


def _shared(env_id: str, what: str, functions: list[Callable]) -> Callable:
    """The one function every task uses (partials equal in function and arguments), else NotImplementedError."""

    def signature(function: Callable) -> tuple:
        if isinstance(function, functools.partial):
            return function.func, function.args, tuple(sorted(function.keywords.items()))
        return (function,)

    if len({signature(function) for function in functions}) > 1:
        raise NotImplementedError(f"{env_id}: the {what} function depends on the task; override batch_{what}_fn")
    return functions[0]


def check_disjoint(splits: Mapping[str, Sequence[Task]]) -> None:
    """Raise ValueError when two splits (or two tasks of one split) share a task's physics."""
    seen: dict[tuple, str] = {}
    for split, tasks in splits.items():
        for task in tasks:
            if task.key in seen:
                raise ValueError(f"a {split} task has the same params as a {seen[task.key]} task: {task.params}")
            seen[task.key] = split
