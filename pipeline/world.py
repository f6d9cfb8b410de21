"""A trained world: what the data and training stages of one seed hand to everything that evaluates it (a run's
prediction and control stages, the compute sweep, default selection), trained here or loaded from a run.

    world = train_world(config, out_dir)         collect, fit the normaliser, train; checkpoint.pt in out_dir
    world = load_world(run_dir)                  a finished run's checkpoint.pt and saved config
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import gymnasium as gym

from core.checkpoint import atomic_write_json
from core.seeding import seed_everything
from env_runner.actions import is_discrete
from env_runner.environment import make_task_family
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer, SegmentBatch
from env_runner.tasks import TaskFamily
from meta_rl.distributed import is_main_process
from pipeline.config import PipelineConfig, resolve_device, resolve_reward
from pipeline.data import TaskContext, TaskSplits, collect_data, held_out_windows, sample_splits, split_rows
from pipeline.models import WorldModels
from pipeline.training import read_training_checkpoint, train
from planning.planner import PLANNERS


@dataclass(frozen=True)
class World:
    """One seed's trained world models and everything their evaluation needs."""

    family: TaskFamily
    config: PipelineConfig  # with the family's input width
    splits: TaskSplits
    normalizer: Normalizer  # fit on the train tasks' random-policy data only
    context: TaskContext  # the oracle's input, standardised over the train tasks
    models: WorldModels
    dataset: Rollouts  # the final training set, random and on-policy rows
    last_losses: dict[str, float] | None  # the last meta-batch's losses (None from a checkpoint that predates them)
    curve: list[dict]  # the training curve, a row per epoch (`pipeline.training`)
    val_windows: SegmentBatch | None  # the val tasks' held-out windows (None without val tasks): selection reads them


def family_and_config(config: PipelineConfig) -> tuple[TaskFamily, PipelineConfig]:
    """The task family of `config.env_name` and `config` with the family's model input width, its reward and its
    device resolved ("auto"); ValueError when `config` contradicts the family (input width, control with a known
    reward the family has no closed form for) or the machine (a device it lacks)."""
    try:
        family = make_task_family(config.env_name, protocol=config.protocol)
    except gym.error.Error as error:  # a registered environment whose dependency is missing (Box2D, MuJoCo)
        raise ValueError(f"--env_name {config.env_name} cannot be made here: {error}") from error
    except ValueError as error:
        raise ValueError(f"--env_name {config.env_name}: {error}") from error
    width = family.model_input_dim
    if config.input_dim not in (None, width):
        raise ValueError(
            f"--input_dim {config.input_dim} contradicts {config.env_name}: obs_dim {family.obs_dim} "
            f"- {len(family.translation_invariant_obs)} position entries + action_dim {family.action_dim} = {width}"
        )
    reward = resolve_reward(config.reward, family.reward_depends_on_task)
    if config.algo == "mbrl" and config.control and reward == "known" and not family.has_reward_fn:
        raise ValueError(
            f"{config.env_name} has no closed-form reward for the planner to score imagined trajectories: "
            "pass --reward learned or --no-control"
        )
    if (
        config.algo == "mbrl"
        and config.control
        and not PLANNERS[config.planner.method].supports_discrete
        and is_discrete(family.action_space)
    ):
        raise ValueError(
            f"--planner.method {config.planner.method} needs a Box action space; {config.env_name}'s is "
            f"{family.action_space}: use cem"
        )
    return family, replace(config, input_dim=width, reward=reward, device=resolve_device(config.device))


def as_saved(config: PipelineConfig) -> PipelineConfig:
    """`config` as its run saves it (config.json, checkpoints): resolved against the family (input width, reward,
    device) for --algo mbrl, unchanged for --algo rl2; what a resumed run's saved config must equal."""
    return family_and_config(config)[1] if config.algo == "mbrl" else config


def reward_weight(config: PipelineConfig) -> float | None:
    """The reward's loss weight where the world model learns the reward (`config.reward` resolved), else None."""
    return config.reward_weight if config.reward == "learned" else None


def train_world(
    config: PipelineConfig,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    stages: dict[str, float] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> World:
    """The data and training stages of one seed: tasks, random-policy data on the train tasks, the normaliser
    (fit on that data only) and the world models, checkpointed to out_dir/checkpoint.pt after each epoch
    (`resume`: continue from it). A fresh run writes out_dir/config.json first.

    `stages` (when given) receives the seconds spent setting up ("setup_s"), collecting ("collect_s", the val tasks'
    windows included) and training ("train_s"); `on_epoch` each row of the training curve as it is made.
    """
    stages = {} if stages is None else stages
    start_time = time.perf_counter()
    seed_everything(config.seed)
    family, config = family_and_config(config)
    if is_main_process() and not resume:  # a resumed run's config.json is the one it must match
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(config.to_dict(), out_dir / "config.json")
    splits = sample_splits(family, config)
    stages["setup_s"] = time.perf_counter() - start_time
    random_data = collect_data(family, splits.train, config.steps_per_task, config.seed, progress)
    normalizer = Normalizer.fit(  # training data only
        random_data, dropped_obs=family.translation_invariant_obs, reward_weight=reward_weight(config)
    )
    val_windows = held_out_windows(family, splits.val, "val", normalizer, config, progress) if splits.val else None
    stages["collect_s"] = time.perf_counter() - start_time - stages["setup_s"]
    context = TaskContext(family, splits.train)
    models = WorldModels(config, config.input_dim, normalizer.target_dim, context.width)
    rows = split_rows(random_data, config.onpolicy_steps)
    checkpoint = out_dir / "checkpoint.pt"
    dataset, last_losses, curve = train(
        config, family, splits, models, normalizer, context, rows, checkpoint, resume, progress, val_windows, on_epoch
    )
    stages["train_s"] = time.perf_counter() - start_time - stages["setup_s"] - stages["collect_s"]
    return World(family, config, splits, normalizer, context, models, dataset, last_losses, curve, val_windows)


def load_world(run_dir: Path) -> World:
    """The world of a run folder whose training finished: its checkpoint.pt and the config saved in it (the task
    splits are sampled again from that config)."""
    state = read_training_checkpoint(run_dir / "checkpoint.pt")
    family, config = family_and_config(PipelineConfig.from_dict(state["config"]))
    if state["epoch"] != config.num_epochs:
        raise ValueError(
            f"{run_dir} holds a run stopped after epoch {state['epoch']} of {config.num_epochs}: "
            "finish it with --resume first"
        )
    splits = sample_splits(family, config)
    normalizer = Normalizer(
        family.obs_dim,
        family.action_dim,
        dropped_obs=family.translation_invariant_obs,
        predicts_reward=reward_weight(config) is not None,
    )
    context = TaskContext(family, splits.train)
    models = WorldModels(config, config.input_dim, normalizer.target_dim, context.width)
    models.load_state_dict(state["models"])
    normalizer.load_state_dict(state["normalizer"])
    dataset = Rollouts(**state["dataset"], tasks=tuple(splits.train))
    val_windows = held_out_windows(family, splits.val, "val", normalizer, config, False) if splits.val else None
    curve = state.get("curve", [])
    return World(
        family, config, splits, normalizer, context, models, dataset, state.get("last_losses"), curve, val_windows
    )
