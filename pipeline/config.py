"""Every setting of a run in one place: `PipelineConfig` (the planner, online-adaptation and RL² groups are the
library's own dataclasses, nested), the rows of the families that differ, and the `--quick` sizes.

    config = defaults_for("HalfCheetah-v5")                       # PipelineConfig's, then the family's row
    config = override(config, {"planner": {"horizon": 25}})       # the one way to change settings

Each setting's default, help line and rule sit on its field (`core.settings.setting`); the library classes'
defaults are the pipeline's, so a row holds only what a family changes. The command line is generated from
these fields (`pipeline.flags`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from adaptation.online import OnlineAdaptationConfig
from core.settings import (
    Rule,
    SettingError,
    check_settings,
    differences,
    integer,
    is_int,
    one_of,
    optional,
    override,
    positive,
    require,
    setting,
)
from env_runner.popgym_families import GROWING_IDS, POPGYM_IDS
from env_runner.protocols import COEFFICIENTS, PROTOCOLS, Protocol, ProtocolTable, protocol_table
from meta_rl.rl2 import RL2Config
from meta_rl.rl2_policy import MEMORIES
from planning.planner import PlannerConfig


def _device_name(value: Any) -> bool:
    return value in ("auto", "cpu", "cuda") or (isinstance(value, str) and re.fullmatch(r"cuda:\d+", value) is not None)


def resolve_device(name: str) -> str:
    """ "auto" -> "cuda" where torch sees a GPU, else "cpu"; ValueError for CUDA on a machine without it."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingError("device", "cpu or auto on this machine (torch.cuda.is_available() is False)", name)
    return name


REWARDS = ("auto", "learned", "known")
WORLD_MODELS = ("ssm", "ssm_complex", "gru", "mlp")


def resolve_reward(reward: str, reward_depends_on_task: bool) -> str:
    """ "auto" -> "learned" for a family whose reward depends on the task, else "known"; other values unchanged."""
    if reward != "auto":
        return reward
    return "learned" if reward_depends_on_task else "known"


def _adaptation_steps(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) > 0 and all(is_int(k) and k >= 0 for k in value)


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of one run (saved as config.json; a resumed run must match them exactly)."""

    env_name: str = setting("Pendulum-v1", "gymnasium id with a task family")
    seed: int = setting(0, "seeds torch, numpy and the environments", integer(0))
    device: str = setting(
        "auto", "auto (cuda where available), cpu, cuda or cuda:N", Rule(_device_name, "auto, cpu, cuda or cuda:N")
    )
    algo: str = setting(
        "mbrl",
        "mbrl: meta-learned SSM world model + MPC planner; rl2: RL² policy (PPO, memory across a trial's episodes)",
        one_of(("mbrl", "rl2")),
    )
    # tasks and data
    protocol: str = setting(
        COEFFICIENTS,
        "where tasks come from: coefficients (our coefficient-space boxes) or a published protocol's table "
        "(env_runner.protocols)",
        one_of((COEFFICIENTS, *PROTOCOLS)),
    )
    num_train_tasks: int = setting(40, "meta-training tasks", integer(1))
    num_val_tasks: int = setting(
        10,
        "validation tasks: every selection the pipeline makes uses these (0: ERM fine-tunes as MAML adapts)",
        integer(0),
    )
    num_test_tasks: int = setting(10, "held-out test tasks inside the training coefficient box", integer(0))
    num_ood_tasks: int = setting(10, "tasks outside the training coefficient box", integer(0))
    steps_per_task: int = setting(400, "random-policy steps collected on each task", integer(1))
    # world model
    reward: str = setting(
        "auto",
        "what the planner scores imagined trajectories with: learned (the world model predicts the reward, adapted "
        "with it), known (the task's closed-form reward), auto (learned where the family's reward depends on the "
        "task, known elsewhere)",
        one_of(REWARDS),
    )
    reward_weight: float = setting(
        1.0, "--reward learned: weight of the reward's squared error against one standardised state entry's", positive()
    )
    input_dim: int | None = setting(
        None, "world-model input width; must equal the family's (default: that width)", optional(integer(1))
    )
    world_model: str = setting(
        "ssm",
        "the world model MetaMAML, ERM and the oracle train: ssm (selective state space model), ssm_complex (its "
        "complex eigenvalues: decays that turn), gru (a GRU, ReBAL's recurrent model) or mlp (three hidden layers on "
        "the current observation and action, GrBAL's)",
        one_of(WORLD_MODELS),
    )
    ensemble_size: int = setting(
        1,
        "world-model members (each model a PETS-style ensemble, stepped together with vmap; the planner keeps each "
        "candidate on one member for its whole rollout)",
        integer(1),
    )
    probabilistic: bool = setting(
        False,
        "a Gaussian head: each member predicts a mean and a bounded log-variance (Gaussian likelihood); the "
        "planner samples",
    )
    state_dim: int = setting(64, "state size of the SSM and the GRU", integer(1))
    hidden_dim: int = setting(64, "hidden width of the SSM and the MLP's layers", integer(1))
    # meta-training
    num_epochs: int = setting(10, "meta-training epochs", integer(1))
    iterations_per_epoch: int = setting(100, "meta-updates per epoch", integer(1))
    meta_batch_size: int = setting(16, "tasks per meta-update", integer(1))
    windows_per_task: int = setting(4, "support/query windows per task in a meta-update", integer(1))
    support_len: int = setting(16, "support window length M", integer(1))
    query_len: int = setting(16, "query window length K", integer(1))
    inner_lr: float = setting(0.05, "inner-loop SGD learning rate", positive())
    outer_lr: float = setting(1e-3, "outer-loop Adam learning rate", positive())
    num_inner_steps: int = setting(1, "inner steps per meta-update", integer(1))
    first_order: bool = setting(False, "first-order MAML (no second derivatives)")
    learn_inner_lr: bool = setting(False, "Meta-SGD: learn one inner rate per weight, starting at inner_lr")
    grad_clip_norm: float = setting(10.0, "outer gradient-norm clip", positive())
    inner_grad_clip: float = setting(10.0, "inner-loop and test-time gradient-norm cap", positive())
    # evaluation
    eval_windows_per_task: int = setting(8, "held-out windows per task for prediction MSE", integer(1))
    eval_steps: tuple[int, ...] = setting(
        (0, 1, 5),
        "adaptation steps at which prediction MSE is reported",
        Rule(_adaptation_steps, "one or more ints >= 0"),
    )
    # control
    control: bool = setting(True, "on-policy collection and the control evaluation (--no-control skips both)")
    control_tasks: int = setting(10, "test (and OOD) tasks the control evaluation runs on", integer(0))
    control_episodes: int = setting(
        3, "episodes per task and condition (same reset seeds in every condition)", integer(1)
    )
    episode_steps: int = setting(200, "steps per control episode", integer(1))
    explore_steps: int = setting(
        0,
        "first steps of every episode the learned-model conditions (tta, memory_only, no_tta) act uniformly at random: "
        "a task's reward has to be observed before a learned one can be planned on",
        integer(0),
    )
    onpolicy_rounds: int = setting(2, "last epochs that first collect on-policy data with the planner", integer(0))
    onpolicy_steps: int = setting(200, "steps per on-policy row (every training row has this length)", integer(1))
    onpolicy_tasks: int = setting(
        8,
        "rows (episodes) per on-policy round, each on a training task (tasks repeat where there are fewer)",
        integer(0),
    )
    env_steps: int | None = setting(
        None,
        "the sample budget: environment steps on training tasks, random-policy (--num_train_tasks x --steps_per_task) "
        "then on-policy; given, it sets how many of the last epochs collect on-policy rows first, (env_steps - random "
        "steps) / (--onpolicy_tasks x --onpolicy_steps), in place of --onpolicy_rounds",
        optional(integer(1)),
    )
    curve_tasks: int | None = setting(
        None,
        "val tasks the learning curve acts on (one tta episode each) after the last epoch before the on-policy rounds "
        "and after each round; 0: no curve (default: up to 5)",
        optional(integer(0)),
    )
    curve_every: int = setting(
        1,
        "on-policy rounds between learning-curve points (the point before the rounds and the last round's are always "
        "measured)",
        integer(1),
    )
    ceiling_episodes: int | None = setting(
        None,
        "episodes per task of the true-dynamics condition, the first of the other conditions' (same reset seeds): the "
        "costliest planner, on the least it needs (default: --control_episodes)",
        optional(integer(1)),
    )
    planner: PlannerConfig = setting(PlannerConfig(), "CEM planner")
    adapt: OnlineAdaptationConfig = setting(OnlineAdaptationConfig(), "test-time adaptation while acting")
    # --algo rl2 (uses env_name, seed and the task counts above; trains on the CPU)
    rl2_memory: str = setting(
        "ssm",
        "the RL² policy's memory: ssm (real decays), ssm_complex (complex eigenvalues: decays that turn, as in S5 "
        "and LRU) or gru",
        one_of(MEMORIES),
    )
    rl2: RL2Config = setting(RL2Config(), "RL² training and evaluation")

    def __post_init__(self) -> None:
        check_settings(self)
        require(
            self.support_len + self.query_len <= self.onpolicy_steps,
            "support_len",
            f"at most --onpolicy_steps - --query_len = {self.onpolicy_steps - self.query_len} (a window fits in a row)",
            self.support_len,
        )
        require(
            self.steps_per_task % self.onpolicy_steps == 0,
            "steps_per_task",
            f"a multiple of --onpolicy_steps ({self.onpolicy_steps})",
            self.steps_per_task,
        )
        if self.algo == "mbrl":
            self._check_what_can_be_honoured()
        require(
            not self.rl2.longer_episodes or self.env_name in GROWING_IDS,
            "rl2.longer_episodes",
            f"none for {self.env_name}, whose episodes cannot grow (those of {', '.join(GROWING_IDS)} can)",
            self.rl2.longer_episodes,
        )
        self._check_protocol()

    def _check_what_can_be_honoured(self) -> None:
        """A count above what the run has would be cut silently while config.json recorded it: refuse it, naming the
        largest value that can be honoured."""
        train = self.num_train_tasks
        require(
            self.meta_batch_size <= train,
            "meta_batch_size",
            f"at most --num_train_tasks ({train})",
            self.meta_batch_size,
        )
        if not self.control:
            require(
                self.env_steps in (None, self.random_steps),
                "env_steps",
                f"the random steps ({self.num_train_tasks} x {self.steps_per_task} = {self.random_steps}) under "
                "--no-control (on-policy rounds need the planner)",
                self.env_steps,
            )
            return
        held_out = max(self.num_test_tasks, self.num_ood_tasks)
        require(
            self.control_tasks <= held_out,
            "control_tasks",
            f"at most {held_out} (the test and OOD tasks: --num_test_tasks {self.num_test_tasks}, "
            f"--num_ood_tasks {self.num_ood_tasks})",
            self.control_tasks,
        )
        require(
            self.onpolicy_rounds <= self.num_epochs,
            "onpolicy_rounds",
            f"at most --num_epochs ({self.num_epochs}): each round is an epoch",
            self.onpolicy_rounds,
        )
        if self.env_steps is not None:
            per_round = self.onpolicy_tasks * self.onpolicy_steps
            spendable = [self.random_steps + rounds * per_round for rounds in range(self.num_epochs + 1)]
            require(
                self.env_steps in spendable and (per_round > 0 or self.env_steps == self.random_steps),
                "env_steps",
                f"random steps ({self.num_train_tasks} x {self.steps_per_task} = {self.random_steps}) plus a whole "
                f"number of on-policy rounds ({self.onpolicy_tasks} x {self.onpolicy_steps} = {per_round} steps "
                f"each), at most --num_epochs ({self.num_epochs}) of them: {spendable[0]}, {spendable[1]}, ... "
                f"{spendable[-1]}",
                self.env_steps,
            )
        require(
            self.curve_tasks is None or self.curve_tasks <= self.num_val_tasks,
            "curve_tasks",
            f"at most --num_val_tasks ({self.num_val_tasks})",
            self.curve_tasks,
        )
        require(
            self.ceiling_episodes is None or self.ceiling_episodes <= self.control_episodes,
            "ceiling_episodes",
            f"at most --control_episodes ({self.control_episodes}): its episodes are the first of theirs",
            self.ceiling_episodes,
        )
        require(
            self.explore_steps < self.episode_steps,
            "explore_steps",
            f"less than --episode_steps ({self.episode_steps}): else tta, memory_only and no_tta all act at random",
            self.explore_steps,
        )

    def _check_protocol(self) -> None:
        """Each split's task count within what the protocol's table holds for this family."""
        table = _table(self.protocol, self.env_name)
        if table is None:
            return
        for split, available in protocol_split_sizes(table).items():
            name = f"num_{split}_tasks"
            require(
                getattr(self, name) <= available,
                name,
                f"at most {available} (the {self.protocol} protocol's {split} split of {self.env_name})",
                getattr(self, name),
            )

    @property
    def random_steps(self) -> int:
        """Random-policy environment steps: `steps_per_task` on every training task."""
        return self.num_train_tasks * self.steps_per_task

    @property
    def rounds(self) -> int:
        """On-policy rounds (the last epochs collect first): none without control, else what --env_steps leaves
        after the random steps, or --onpolicy_rounds when no budget is given."""
        if not self.control:
            return 0
        if self.env_steps is None:
            return self.onpolicy_rounds
        per_round = self.onpolicy_tasks * self.onpolicy_steps
        return (self.env_steps - self.random_steps) // per_round if per_round else 0

    @property
    def budget(self) -> int:
        """Environment steps on training tasks the run spends: random, then `rounds` on-policy rounds."""
        return self.random_steps + self.rounds * self.onpolicy_tasks * self.onpolicy_steps

    def measures_curve_after(self, epoch: int) -> bool:
        """Whether the learning curve has a point after 0-based `epoch`: the epoch before the first on-policy round,
        every `curve_every`-th round and the last."""
        if not (self.learning_curve_tasks and self.rounds):
            return False
        done = epoch - (self.num_epochs - self.rounds) + 1  # on-policy rounds finished after this epoch
        return done == 0 or (done > 0 and (done % self.curve_every == 0 or done == self.rounds))

    @property
    def learning_curve_tasks(self) -> int:
        """Val tasks the learning curve acts on: --curve_tasks, by default up to 5 (none without control)."""
        if not self.control:
            return 0
        return min(5, self.num_val_tasks) if self.curve_tasks is None else self.curve_tasks

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PipelineConfig:
        """The config that `to_dict` wrote (config.json, a checkpoint's "config")."""
        return override(cls(), values)


# the settings each --algo reads; a flag outside its algo's set is refused (it would change nothing)
RL2_SETTINGS = frozenset(
    {"env_name", "seed", "device", "algo", "protocol", "num_train_tasks", "num_val_tasks", "num_test_tasks"}
    | {"num_ood_tasks", "rl2_memory", "rl2"}
)
MBRL_SETTINGS = frozenset(item.name for item in fields(PipelineConfig)) - {"rl2_memory", "rl2"}


QUICK_SIZES: dict[str, Any] = {
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
    "planner": {"horizon": 5, "num_candidates": 32, "num_iterations": 2},
    "adapt": {"window": 8, "update_every": 4},
    "rl2": {
        "iterations": 2,
        "trials_per_iteration": 4,
        "num_minibatches": 2,
        "update_epochs": 2,
        "hidden_dim": 16,
    },
}


_LOCOMOTION = {
    "num_train_tasks": 30,
    "hidden_dim": 128,
    "episode_steps": 100,
    "onpolicy_steps": 100,
    "control_episodes": 2,
    "planner": {"horizon": 10, "num_candidates": 200},
}

# chosen on HalfCheetahCrippled-v0's val tasks; Hopper's and the Ant's val tasks preferred it to the shared row
_META_SGD_TRAINING = {"learn_inner_lr": True, "iterations_per_epoch": 300, "steps_per_task": 2400}

_HALF_CHEETAH = {**_LOCOMOTION, "learn_inner_lr": True, "iterations_per_epoch": 600, "steps_per_task": 1200}

# iCEM at 100 candidates, horizon 15: the cheapest setting tied with the best tta return on HalfCheetah-v5's val
# tasks, bounded there by the true dynamics (experiments/planner_choice.py, docs/selection/planner_halfcheetah_1.json)
_HALF_CHEETAH_PLANNER = {"method": "icem", "num_candidates": 100, "horizon": 15}


# POPGym's PPO iterations: what the slowest memory (the GRU) trains in 12 minutes alone on one thread of the 2-core
# machine with every episode at its full length (docs/selection/popgym_throughput*.json, measured by
# `experiments.popgym_throughput`), so that a run beside a second one, with its val trials and evaluation, stays
# within 20 minutes; the SSMs, faster, train the same environment steps in less
_POPGYM_ITERATIONS = {
    "popgym-RepeatPreviousEasy-v0": 4650,
    "popgym-RepeatPreviousMedium-v0": 2425,
    "popgym-RepeatPreviousHard-v0": 1800,
    "popgym-RepeatFirstEasy-v0": 4750,
    "popgym-RepeatFirstMedium-v0": 700,
    "popgym-RepeatFirstHard-v0": 325,
    "popgym-CountRecallEasy-v0": 4375,
    "popgym-CountRecallMedium-v0": 2350,
    "popgym-CountRecallHard-v0": 1275,
    "popgym-AutoencodeEasy-v0": 2650,
    "popgym-AutoencodeMedium-v0": 1425,
    "popgym-AutoencodeHard-v0": 925,
    "popgym-PositionOnlyCartPoleEasy-v0": 500,
    "popgym-PositionOnlyCartPoleMedium-v0": 225,
    "popgym-PositionOnlyCartPoleHard-v0": 150,
    "popgym-PositionOnlyPendulumEasy-v0": 1300,
    "popgym-PositionOnlyPendulumMedium-v0": 1825,
    "popgym-PositionOnlyPendulumHard-v0": 2625,
    "popgym-MultiarmedBanditEasy-v0": 1450,
    "popgym-MultiarmedBanditMedium-v0": 725,
    "popgym-MultiarmedBanditHard-v0": 475,
}

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    # MuJoCo locomotion: 100-step control episodes (the environments' limit is 1000) and a shorter horizon keep a
    # single-seed run within 15 minutes on 2 CPU cores. Each row adds what the family's val tasks chose
    # (experiments/select_defaults.py, records in docs/selection/); the crippled cheetah is the only
    # family whose planner was selected
    "HalfCheetah-v5": {**_HALF_CHEETAH, "planner": _HALF_CHEETAH_PLANNER},
    "Hopper-v5": {**_LOCOMOTION, **_META_SGD_TRAINING},
    "HalfCheetahCrippled-v0": {**_LOCOMOTION, **_META_SGD_TRAINING, "planner": {"horizon": 10, "num_candidates": 500}},
    "AntCrippled-v0": {**_LOCOMOTION, **_META_SGD_TRAINING},
    "AntMass-v0": {**_LOCOMOTION, **_META_SGD_TRAINING},  # the crippled Ant's row, not selected for this family
    # the goal families: the rows of their physics (not selected for them; HalfCheetahVel's val goals tied every
    # reward weight tried with the default 1), with the benchmarks' 200-step episodes;
    # the cheetahs' 300 meta-updates per epoch (HalfCheetah-v5's 600 took a HalfCheetahVel-v0 seed 21 minutes with
    # two runs sharing the 2 cores) keep a default seed within 15 minutes (810 s alone; AntDir-v0 656 s)
    "HalfCheetahVel-v0": {**_HALF_CHEETAH, "episode_steps": 200, "iterations_per_epoch": 300},
    "HalfCheetahDir-v0": {**_HALF_CHEETAH, "episode_steps": 200, "iterations_per_epoch": 300},
    "AntDir-v0": {**_LOCOMOTION, **_META_SGD_TRAINING, "episode_steps": 200},
    # POPGym: one POMDP, so a trial is one episode (MultiarmedBandit's episode is the trial of pulls on one bandit)
    **{env_id: {"rl2": {"episodes_per_trial": 1, "iterations": _POPGYM_ITERATIONS[env_id]}} for env_id in POPGYM_IDS},
}


def _table(protocol: str, env_name: str) -> ProtocolTable | None:
    """The protocol's table of `env_name` (None for our own splits); a SettingError naming --protocol otherwise."""
    try:
        return protocol_table(protocol, env_name)
    except ValueError as error:
        raise SettingError("protocol", f"a protocol with a table for {env_name}", protocol) from error


def protocol_split_sizes(table: ProtocolTable) -> dict[str, int]:
    """How many tasks each split of a protocol's table holds (for any seed)."""
    held_out = {split: table.held_out.get(split, 0) for split in ("val", "test")}
    training = len(table.training_combinations()) - sum(held_out.values())
    return {"train": training, **held_out, "ood": len(table.ood_params())}


def protocol_row(table: ProtocolTable, config: PipelineConfig, quick: bool) -> dict[str, Any]:
    """What a protocol changes in `config`: the train, val and test task counts capped by the table's (and the
    meta-batch and on-policy task counts by the train tasks), and (unless `quick`) every OOD combination, all of
    them in the control evaluation, and the protocol's episode length."""
    sizes = protocol_split_sizes(table)
    row: dict[str, Any] = {
        f"num_{split}_tasks": min(getattr(config, f"num_{split}_tasks"), sizes[split])
        for split in ("train", "val", "test")
    }
    row["meta_batch_size"] = min(config.meta_batch_size, row["num_train_tasks"])
    if config.curve_tasks is not None:
        row["curve_tasks"] = min(config.curve_tasks, row["num_val_tasks"])
    if quick:
        return {**row, "num_ood_tasks": min(config.num_ood_tasks, sizes["ood"])}
    return {
        **row,
        "num_ood_tasks": sizes["ood"],
        "control_tasks": max(min(config.control_tasks, row["num_test_tasks"]), sizes["ood"]),
        "episode_steps": table.episode_steps,
    }


def budget_row(protocol: Protocol, table: ProtocolTable, config: PipelineConfig) -> dict[str, Any]:
    """The protocol's sample budget as the model-based loop's settings (none without a published budget).

    The protocol spends `iterations` x `episodes_per_iteration` episodes of `table.episode_steps`, the first
    iteration's with random actions. Here every training row is a whole episode; the random rows cover every train
    task with at least as many episodes in all as the protocol's first iteration; each on-policy round acts
    `episodes_per_iteration` episodes (train tasks repeat where there are fewer), an epoch each after the one
    on random data alone; and the budget is the largest such total within the protocol's.
    """
    if protocol.iterations is None or protocol.episodes_per_iteration is None:
        return {}
    episode, per_round = table.episode_steps, protocol.episodes_per_iteration
    episodes_per_task = -(-per_round // config.num_train_tasks)  # ceil
    random_steps = config.num_train_tasks * episodes_per_task * episode
    rounds = (protocol.iterations * per_round * episode - random_steps) // (per_round * episode)
    return {
        "steps_per_task": episodes_per_task * episode,
        "onpolicy_steps": episode,
        "onpolicy_tasks": per_round,
        "num_epochs": rounds + 1,
        "env_steps": random_steps + rounds * per_round * episode,
    }


def defaults_for(env_name: str, quick: bool = False, protocol: str = COEFFICIENTS) -> PipelineConfig:
    """The defaults of `env_name`: PipelineConfig's, then its family's row of FAMILY_DEFAULTS, then the
    --quick sizes, then what `protocol` changes (`protocol_row`, and but for --quick its budget: `budget_row`)."""
    config = override(PipelineConfig(env_name=env_name), FAMILY_DEFAULTS.get(env_name, {}))
    config = override(config, QUICK_SIZES) if quick else config
    if protocol == COEFFICIENTS:
        return config
    table = _table(protocol, env_name)
    config = override(config, {"protocol": protocol, **protocol_row(table, config, quick)})
    return config if quick else override(config, budget_row(PROTOCOLS[protocol], table, config))


def check_resumable(saved: PipelineConfig, requested: PipelineConfig, where: Path) -> None:
    """ValueError naming every setting in which a run's saved config differs from the one asked to continue it."""
    changed = differences(saved, requested)
    if changed:
        listed = "; ".join(f"--{name} was {before!r}, now {after!r}" for name, before, after in changed)
        raise ValueError(f"cannot resume {where}: the configuration differs from the saved run's: {listed}")
