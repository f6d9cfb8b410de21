"""Choosing a family's defaults on val tasks: candidate settings, each trained by the pipeline's own data and
training stages and scored on the val tasks alone. Test and OOD tasks are never made.

    python experiments/select_defaults.py --env_name HalfCheetahCrippled-v0 \
        --candidate '{}' --candidate '{"hidden_dim": 256}' --candidate '{"steps_per_task": 1200}'

A candidate is a JSON object of `PipelineConfig` fields (nested groups as objects: {"planner": {"horizon": 15}})
applied to the family's defaults (`defaults_for`); `{}` is the defaults themselves. Scores, per val task:
- "maml_mse", "erm_mse": query MSE after one adaptation step on the support window just before it
  (`pipeline.prediction.window_errors`; ERM's fine-tuning selected on the same val windows, as the pipeline does);
- "tta_return" (candidates with control on): the "tta" condition's mean episode return on the first
  `control_tasks` val tasks, with the pipeline's episodes and seeds;
- "train_s": seconds spent collecting data and training.

Choice (`--by prediction` or `--by control`): the lowest mean val MAML MSE (the highest mean val "tta" return).
Every candidate whose paired difference with it, over val tasks, has a 95% interval containing 0 is marked
tied: the val tasks cannot tell the two apart. (The time budget is the caller's to respect: every candidate
offered should fit it.) The result goes to `--out` as JSON:

    {"env_name", "seed", "quick", "by", "rule", "defaults": {...}, "chosen": index,
     "candidates": [{"overrides": {...}, "train_s", "maml_mse": summary, "erm_mse": summary,
                     "erm_fine_tuning": [optimizer, rate], "tta_return": summary | null,
                     "versus_best": paired, "tied": bool}],
     "timing": {"total_s"}}
    summary = {"mean", "ci95": [lo, hi], "per_task": [...]}
    paired = {"mean", "ci95", "n", "wins", "losses"} of candidate - best
             (`pipeline.report.statistics.paired_difference`)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.checkpoint import atomic_write_json
from core.settings import override
from pipeline.config import PipelineConfig, defaults_for
from pipeline.console import OneLineParser
from pipeline.control import condition_returns
from pipeline.data import held_out_windows
from pipeline.executor import Executor
from pipeline.flags import add_program_flags, executor_from_flags
from pipeline.prediction import fine_tuner, maml_adapter, select_fine_tuning, window_errors
from pipeline.report.statistics import paired_difference, per_task_means, task_summary
from pipeline.world import World, train_world

RULE = (
    "lowest mean val MAML k=1 MSE (--by prediction) or highest mean val tta return (--by control); candidates "
    "whose paired difference with it over val tasks has a 95% interval containing 0 are marked tied"
)


def val_scores(world: World) -> dict[str, Any]:
    """Val-task scores of a trained world: MAML and ERM query MSE after one step, and the tta return."""
    config, tasks = world.config, world.splits.val
    if not tasks:
        raise ValueError("selection needs val tasks: num_val_tasks must be >= 1")
    batch = held_out_windows(world.family, tasks, "val", world.normalizer, config, progress=False)
    choice = select_fine_tuning(world.models.erm_model, batch, replace(config, eval_steps=(1,)), world.models.head)
    erm = fine_tuner(world.models.erm_model, *choice, config, world.models.head)
    scores: dict[str, Any] = {
        "maml_mse": task_summary(window_errors(maml_adapter(world), batch, (1,), head=world.models.head)["1"]),
        "erm_mse": task_summary(window_errors(erm, batch, (1,), head=world.models.head)["1"]),
        "erm_fine_tuning": list(choice),
        "tta_return": None,
    }
    if config.control:
        returns = condition_returns(world, config, "val", "tta")
        scores["tta_return"] = task_summary(per_task_means(returns, config.control_episodes))
    return scores


def choose_candidate(candidates: list[dict[str, Any]], by: str) -> int:
    """Index of the candidate with the best mean val score (RULE); sets each candidate's "versus_best" (paired
    over val tasks) and "tied" (that difference's 95% interval contains 0)."""
    key, sign = ("maml_mse", 1.0) if by == "prediction" else ("tta_return", -1.0)
    if any(candidate[key] is None for candidate in candidates):
        raise ValueError(f"--by {by} needs {key} for every candidate (control on)")
    best = min(range(len(candidates)), key=lambda index: sign * candidates[index][key]["mean"])
    for index, candidate in enumerate(candidates):
        difference = paired_difference(candidate[key]["per_task"], candidates[best][key]["per_task"])
        candidate["versus_best"] = difference
        low, high = difference["ci95"]
        candidate["tied"] = index == best or low <= 0.0 <= high
    return best


def candidate_configs(
    env_name: str, candidates: list[dict[str, Any]], seed: int, quick: bool
) -> tuple[PipelineConfig, list[PipelineConfig]]:
    """The defaults every candidate starts from, and each candidate's config (ValueError names a bad override)."""
    defaults = replace(defaults_for(env_name, quick), seed=seed)
    return defaults, [override(defaults, overrides) for overrides in candidates]


def score_candidate(overrides: dict[str, Any], config: PipelineConfig, work_dir: Path, progress: bool) -> dict:
    """Train one candidate and score it on val tasks: its record (module docstring) without the choice's fields."""
    if progress:
        print(f"candidate {json.dumps(overrides)}", flush=True)
    start = time.perf_counter()
    world = train_world(config, work_dir, progress=progress)
    record = {"overrides": overrides, "train_s": time.perf_counter() - start, **val_scores(world)}
    if progress:
        print(describe(record), flush=True)
    return record


def select(
    env_name: str,
    candidates: list[dict[str, Any]],
    by: str,
    seed: int,
    work_dir: Path,
    progress: bool,
    quick: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Train and score every candidate on val tasks (several at once through `executor`); returns the selection
    record (module docstring). `quick`: the candidates override the --quick sizes (a smoke run)."""
    start = time.perf_counter()
    executor = executor or Executor()
    defaults, configs = candidate_configs(env_name, candidates, seed, quick)  # every candidate checked first
    arguments = [
        (overrides, config, work_dir / f"candidate_{index}", progress and executor.in_process)
        for index, (overrides, config) in enumerate(zip(candidates, configs, strict=True))
    ]
    scored = executor.map(score_candidate, arguments, [f"candidate {index}" for index in range(len(candidates))])
    chosen = choose_candidate(scored, by)
    return {
        "env_name": env_name,
        "seed": seed,
        "quick": quick,
        "by": by,
        "rule": RULE,
        "defaults": defaults.to_dict(),
        "chosen": chosen,
        "candidates": scored,
        "timing": {"total_s": time.perf_counter() - start},
    }


def describe(record: dict[str, Any]) -> str:
    text = (
        f"  {json.dumps(record['overrides'])}: val MAML k=1 {record['maml_mse']['mean']:.4f}, "
        f"ERM k=1 {record['erm_mse']['mean']:.4f}"
    )
    if record["tta_return"] is not None:
        text += f", tta return {record['tta_return']['mean']:.1f}"
    return text + f", trained in {record['train_s']:.0f} s"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env_name", required=True, help="gymnasium id with a task family")
    parser.add_argument(
        "--candidate", action="append", type=json.loads, required=True, help="JSON overrides of the defaults"
    )
    parser.add_argument("--by", choices=("prediction", "control"), default="prediction", help="what the choice reads")
    parser.add_argument("--seed", type=int, default=0, help="the seed every candidate is trained with")
    parser.add_argument("--out", type=Path, required=True, help="where the selection JSON is written")
    add_program_flags(parser, threads=1)  # --quick: the candidates override the quick sizes (a smoke run)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    executor = executor_from_flags(parser, args)
    try:
        candidate_configs(args.env_name, args.candidate, args.seed, args.quick)
    except ValueError as error:
        parser.error(f"--candidate: {error}")
    with tempfile.TemporaryDirectory() as work_dir:
        record = select(
            args.env_name,
            args.candidate,
            args.by,
            args.seed,
            Path(work_dir),
            not args.no_progress,
            args.quick,
            executor,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, args.out)
    if not args.no_progress:
        print(f"chosen: candidate {record['chosen']} {json.dumps(record['candidates'][record['chosen']]['overrides'])}")
    return record


if __name__ == "__main__":
    main()
