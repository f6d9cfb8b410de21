"""The trained worlds the programs over many settings evaluate (the compute sweep, the planner choice): one per
seed, loaded from a finished run or trained here, and the flags that say which."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from pipeline.config import defaults_for
from pipeline.world import World, load_world, train_world


def add_world_flags(parser: argparse.ArgumentParser, program: str) -> None:
    """--env_name, --seeds, --out_dir (default runs/<program>-<env>-<timestamp>) and --from_run."""
    parser.add_argument("--env_name", default="Pendulum-v1", help="gymnasium id with a task family")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one world model per seed")
    parser.add_argument("--out_dir", type=Path, help=f"output folder (default runs/{program}-<env>-<timestamp>)")
    parser.add_argument("--from_run", type=Path, help="a finished main.py run: RUN_DIR/seed_<S>/checkpoint.pt")


def world_for_seed(args: argparse.Namespace, seed: int, out_dir: Path, progress: bool) -> World:
    """Seed `seed`'s world: `args.from_run`'s (its config as saved), or the family's defaults (`args.quick`: the
    quick sizes) trained into out_dir/seed_<S>/."""
    if args.from_run is None:
        config = replace(defaults_for(args.env_name, args.quick), seed=seed)
        return train_world(config, out_dir / f"seed_{seed}", progress=progress)
    world = load_world(args.from_run / f"seed_{seed}")
    if world.config.env_name != args.env_name:
        raise ValueError(f"{args.from_run} is a run on {world.config.env_name}, not {args.env_name}")
    return world
