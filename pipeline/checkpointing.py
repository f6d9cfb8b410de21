"""The pipeline's checkpoint: everything needed to resume a run and end with the same weights."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from core.checkpoint import atomic_save, load_checkpoint
from env_runner.rollouts import Rollouts
from env_runner.segments import Normalizer
from env_runner.tasks import Task
from pipeline.config import PipelineConfig
from pipeline.training import WorldModels

TENSOR_FIELDS = tuple(field.name for field in fields(Rollouts) if field.name != "tasks")


def save_checkpoint(
    path: Path,
    config: PipelineConfig,
    epoch: int,
    models: WorldModels,
    normalizer: Normalizer,
    dataset: Rollouts,
    generator: torch.Generator,
) -> None:
    """Write atomically: key "model" is the meta-learned SSM's state dict (with "model_config")."""
    atomic_save(
        {
            "model": models.maml_model.state_dict(),
            "model_config": models.maml_model.config,
            "models": models.state_dict(),
            "normalizer": normalizer.state_dict(),
            "dataset": {name: getattr(dataset, name) for name in TENSOR_FIELDS},
            "generator": generator.get_state(),
            "config": config.to_dict(),
            "epoch": epoch,
        },
        path,
    )


def load_pipeline_checkpoint(
    path: Path, config: PipelineConfig, models: WorldModels, normalizer: Normalizer, tasks: list[Task],
    generator: torch.Generator,
) -> tuple[int, Rollouts]:
    """Restore models, normaliser and generator in place; return (completed epochs, training dataset)."""
    state = load_checkpoint(path, map_location="cpu")
    saved = PipelineConfig.from_dict(state["config"])
    if saved != config:
        changed = {key: (value, getattr(config, key)) for key, value in saved.to_dict().items()
                   if getattr(config, key) != value}
        raise ValueError(f"cannot resume {path}: the configuration differs (saved, requested): {changed}")
    models.load_state_dict(state["models"])
    normalizer.load_state_dict(state["normalizer"])
    generator.set_state(state["generator"])
    dataset = Rollouts(**state["dataset"], tasks=tuple(tasks))
    return int(state["epoch"]), dataset
