"""The sample cost of adapting to a task: the model-based pipeline's val return at several data budgets beside RL²'s
val learning curve, both against the environment steps they trained on.

    python experiments/sample_cost.py --env_name PointNavigation-v0 --steps_per_task 200 400 800 --seeds 0 1 2 \
        --rl2 docs/results/rl2_pointnav --out docs/results/sample_cost_pointnav --jobs 2

Each (budget, seed) trains the pipeline's world models from the family's defaults with `steps_per_task` changed
(`pipeline.world.train_world`: random-policy data, then the on-policy rounds) and scores the "tta" condition's
first-episode return on the val tasks, with the pipeline's control episodes (`experiments.select_defaults.val_scores`).
Test and OOD tasks are never made. RL²'s curve is the published runs' training log: every `val_every` iterations, the
mean return of each episode of one trial per val task. Writes sample_cost.json and sample_cost.png:

    {"env_name", "seeds", "model_based": [{"steps_per_task", "env_steps": [per seed], "tta_return": pooled}],
     "rl2": {"policy", "env_steps": [...], "episode_returns": [{"episode", "mean": [...], "per_seed": [[...]]}]},
     "timing": {"total_s"}, "provenance": {...} (`pipeline.provenance`)}
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.checkpoint import atomic_write_json
from experiments.plots import write_sample_cost_plot
from experiments.select_defaults import val_scores
from pipeline.config import PipelineConfig, defaults_for, resolve_device
from pipeline.console import OneLineParser
from pipeline.executor import Executor
from pipeline.flags import add_program_flags, executor_from_flags
from pipeline.provenance import command_line, provenance
from pipeline.report.statistics import pooled
from pipeline.report.summary import seed_metrics
from pipeline.world import train_world


def score_budget(config: PipelineConfig, work_dir: Path) -> dict:
    """Train one world and score "tta" on its val tasks: {"env_steps", "per_task": val returns, "train_s"}."""
    start = time.perf_counter()
    world = train_world(config, work_dir, progress=False)
    scores = val_scores(world)
    return {
        "env_steps": world.dataset.num_envs * world.dataset.steps,
        "per_task": scores["tta_return"]["per_task"],
        "train_s": time.perf_counter() - start,
    }


def model_based_points(
    env_name: str, budgets: list[int], seeds: list[int], work_dir: Path, executor: Executor, quick: bool = False
) -> list[dict]:
    """One point per budget: the env steps of each seed's world and the val "tta" return pooled over seeds."""
    configs = [
        replace(defaults_for(env_name, quick), steps_per_task=budget, seed=seed) for budget in budgets for seed in seeds
    ]
    arguments = [(config, work_dir / f"steps_{config.steps_per_task}_seed_{config.seed}") for config in configs]
    scored = executor.map(
        score_budget, arguments, [f"steps_per_task {c.steps_per_task}, seed {c.seed}" for c in configs]
    )
    points = []
    for index, budget in enumerate(budgets):
        runs = scored[index * len(seeds) : (index + 1) * len(seeds)]
        points.append(
            {
                "steps_per_task": budget,
                "env_steps": [run["env_steps"] for run in runs],
                "train_s": [run["train_s"] for run in runs],
                "tta_return": pooled([run["per_task"] for run in runs]),
            }
        )
    return points


def rl2_curve(folder: Path, seeds: list[int]) -> dict:
    """The RL² learner's val curve from the published runs of `seeds`: per logged iteration, each episode's mean val
    return per seed (ValueError when a seed is missing or a run has no val curve)."""
    by_seed = {run["seed"]: run for run in seed_metrics(folder)}
    missing = sorted(set(seeds) - set(by_seed))
    if missing:
        raise ValueError(f"{folder} holds seeds {sorted(by_seed)}, not {missing}")
    runs = [by_seed[seed] for seed in seeds]
    policy = runs[0]["config"]["rl2_memory"]
    logged = [[row for row in run["rl2_training"][policy] if "val_returns" in row] for run in runs]
    if not all(logged):
        raise ValueError(f"{folder}: a run has no val curve (trained with rl2.val_every = 0)")
    episodes = len(logged[0][0]["val_returns"])
    curves = [
        {
            "episode": episode + 1,
            "per_seed": [[row["val_returns"][episode] for row in rows] for rows in logged],
        }
        for episode in range(episodes)
    ]
    for curve in curves:
        curve["mean"] = np.mean(curve["per_seed"], axis=0).tolist()
    return {"policy": policy, "env_steps": [row["env_steps"] for row in logged[0]], "episode_returns": curves}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_name", required=True, help="gymnasium id with a task family")
    parser.add_argument("--steps_per_task", type=int, nargs="+", required=True, help="the data budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every budget")
    parser.add_argument("--rl2", type=Path, help="published RL² runs of these seeds (docs/results/<family>)")
    parser.add_argument("--out", type=Path, required=True, help="folder for sample_cost.json and sample_cost.png")
    add_program_flags(parser, threads=1)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    executor = executor_from_flags(parser, args)
    for budget in args.steps_per_task:
        try:
            replace(defaults_for(args.env_name, args.quick), steps_per_task=budget)
        except ValueError as error:
            parser.error(f"--steps_per_task {budget}: {error}")
    start = time.perf_counter()
    device = resolve_device(defaults_for(args.env_name).device)
    code = provenance(command_line(argv), device)  # the code as the runs start
    result: dict = {"env_name": args.env_name, "seeds": args.seeds}
    if args.rl2 is not None:
        result["rl2"] = rl2_curve(args.rl2, args.seeds)
    with tempfile.TemporaryDirectory() as work_dir:
        result["model_based"] = model_based_points(
            args.env_name, args.steps_per_task, args.seeds, Path(work_dir), executor, args.quick
        )
    result["timing"] = {"total_s": time.perf_counter() - start}
    result["provenance"] = code
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, args.out / "sample_cost.json")
    write_sample_cost_plot(result, args.out / "sample_cost.png")
    return result


if __name__ == "__main__":
    main()
