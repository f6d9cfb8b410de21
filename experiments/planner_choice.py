"""Choosing the planner on val tasks: return against planner compute, on the true dynamics and on the learned model.

    python experiments/planner_choice.py --env_name Pendulum-v1 --seeds 0 1 [--from_run RUN_DIR] [--out_dir DIR]
    python experiments/planner_choice.py --env_name HalfCheetah-v5 --candidates 50 200 --horizons 10 20 \
        --noise_exponents 0 0.25 1
    python experiments/planner_choice.py --quick          # tiny model, two settings per method: a smoke run

For every seed a trained world comes from `--from_run RUN_DIR` (`RUN_DIR/seed_<S>/checkpoint.pt`) or from the
pipeline's data and training stages (checkpointed to `DIR/seed_<S>/`). Every planner setting of the grid
(`--methods` x `--candidates` x `--horizons`, iCEM also x `--noise_exponents`; the family's other planner
settings unchanged) then acts on the val
tasks alone, with the pipeline's episodes and seeds, as "true_dynamics" (where the family has them) and as "tta" (the
meta-learned model with online adaptation); random actions are measured once. Compute is counted as model steps per
environment step: sequences scored per planning step (`PlannerConfig.samples_per_step`) times the horizon.

Choice: the highest mean val "tta" return; every setting whose mean lies inside that best one's 95% interval (over
(seed, task) pairs) ties, and the tie with the fewest model steps is chosen. The true dynamics' return at each setting
says whether it bounds the learned model there ("ceiling": its mean at least tta's). Test and OOD tasks are never made.

Outputs: `DIR/planner_choice.json` and `DIR/planner_choice.png` (return against model steps per environment step, log
x, a line per method and condition, random dotted):

    {"env_name", "seeds", "quick", "from_run", "config": {...first seed's}, "rule", "random": summary,
     "settings": [{"method", "num_candidates", "horizon", "num_iterations", "noise_exponent" (iCEM), "model_steps",
                   "true_dynamics": summary | null, "tta": summary, "seconds_per_step": {condition: mean over seeds},
                   "ceiling": bool | null, "chosen": bool}],
     "chosen": index, "timing": {"total_s"}, "provenance": {...}}
    summary = `pipeline.report.statistics.pooled` over seeds, with "per_task" (one value per (seed, task))
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from core.checkpoint import atomic_write_json
from core.progress import progress_bar
from core.settings import override
from experiments.compute_sweep import cheapest_tie, pooled_pairs
from experiments.plots import write_planner_choice_plot
from experiments.worlds import add_world_flags, world_for_seed
from pipeline.config import PipelineConfig, resolve_device
from pipeline.console import OneLineParser
from pipeline.control import condition_returns, episodes_per_task
from pipeline.flags import add_program_flags, executor_from_flags
from pipeline.provenance import command_line, device_name, provenance
from pipeline.report.statistics import per_task_means
from pipeline.world import World
from planning.true_dynamics import has_true_dynamics

RULE = (
    "the highest mean val tta return; settings whose mean lies inside its 95% interval over (seed, task) pairs tie, "
    "and the tie with the fewest model steps per environment step is chosen"
)
QUICK_GRID = {"methods": ("cem", "icem"), "candidates": (16, 32), "horizons": (5,)}


def grid(config: PipelineConfig, methods, candidates, horizons, exponents=None) -> list[PipelineConfig]:
    """`config` with every (method, candidates, horizon) of the grid, in that order; iCEM with every colored-noise
    exponent in `exponents` (None: the config's)."""
    configs = []
    for method, count, horizon in itertools.product(methods, candidates, horizons):
        planner = {"method": method, "num_candidates": count, "horizon": horizon}
        noise = exponents if method == "icem" and exponents else [config.planner.noise_exponent]
        configs += [override(config, {"planner": {**planner, "noise_exponent": beta}}) for beta in noise]
    return configs


def val_returns(world: World, config: PipelineConfig, condition: str) -> tuple[list[float], float]:
    """Per-task mean val return of `condition` under `config`, and seconds per environment step."""
    start = time.perf_counter()
    returns = condition_returns(world, config, "val", condition)
    seconds = time.perf_counter() - start
    steps = len(returns) * config.episode_steps  # an upper bound where episodes end early
    return per_task_means(returns, episodes_per_task(config, condition)), seconds / steps


def choose_one_seed(args: argparse.Namespace, seed: int, out_dir: Path, progress: bool) -> dict:
    """One seed's measurements: {"config", "random": [per task], "settings": [{condition: {"returns", "seconds"}}]}."""
    world = world_for_seed(args, seed, out_dir, progress)
    if not world.splits.val:
        raise ValueError("planner choice needs val tasks: num_val_tasks must be >= 1")
    sizes = QUICK_GRID if args.quick else {"methods": args.methods, "candidates": args.candidates}
    horizons = QUICK_GRID["horizons"] if args.quick else args.horizons
    conditions = ("true_dynamics", "tta") if has_true_dynamics(world.family) else ("tta",)
    settings = []
    configs = grid(world.config, sizes["methods"], sizes["candidates"], horizons, args.noise_exponents)
    for config in progress_bar(configs, progress, f"seed {seed}: planner settings"):
        measured = {}
        for condition in conditions:
            returns, seconds = val_returns(world, config, condition)
            measured[condition] = {"returns": returns, "seconds": seconds}
        settings.append(measured)
    random = per_task_means(condition_returns(world, world.config, "val", "random"), world.config.control_episodes)
    return {
        "config": world.config.to_dict(),
        "grid": [asdict(config.planner) for config in configs],
        "random": random,
        "settings": settings,
    }


def assemble(runs: list[dict], args: argparse.Namespace, total_s: float) -> dict:
    """planner_choice.json's contents (module docstring) from every seed's `choose_one_seed`."""
    config = PipelineConfig.from_dict(runs[0]["config"])
    settings = []
    for index, planner in enumerate(runs[0]["grid"]):
        measured = [run["settings"][index] for run in runs]
        entry = {
            "method": planner["method"],
            "num_candidates": planner["num_candidates"],
            "horizon": planner["horizon"],
            "num_iterations": planner["num_iterations"],
            "noise_exponent": planner["noise_exponent"] if planner["method"] == "icem" else None,
            "model_steps": override(config, {"planner": planner}).planner.samples_per_step * planner["horizon"],
            "true_dynamics": None,
            "seconds_per_step": {},
        }
        for condition in measured[0]:
            entry[condition] = pooled_pairs([seed[condition]["returns"] for seed in measured])
            entry["seconds_per_step"][condition] = sum(seed[condition]["seconds"] for seed in measured) / len(measured)
        truth = entry["true_dynamics"]
        entry["ceiling"] = None if truth is None else truth["mean"] >= entry["tta"]["mean"]
        settings.append(entry)
    chosen = int(
        cheapest_tie(
            {str(i): entry["tta"] for i, entry in enumerate(settings)},
            {str(i): entry["model_steps"] for i, entry in enumerate(settings)},
        )
    )
    for index, entry in enumerate(settings):
        entry["chosen"] = index == chosen
    return {
        "env_name": config.env_name,
        "seeds": [run["config"]["seed"] for run in runs],
        "quick": args.quick,
        "from_run": None if args.from_run is None else str(args.from_run),
        "config": config.to_dict(),
        "rule": RULE,
        "random": pooled_pairs([run["random"] for run in runs]),
        "settings": settings,
        "chosen": chosen,
        "timing": {"total_s": total_s},
    }


def print_table(results: dict) -> None:
    print(f"{results['env_name']}: val return by planner setting (random {results['random']['mean']:.1f})")
    for entry in results["settings"]:
        truth = "-" if entry["true_dynamics"] is None else f"{entry['true_dynamics']['mean']:8.1f}"
        beta = "" if entry["noise_exponent"] is None else f" beta={entry['noise_exponent']:g}"
        mark = "  chosen" if entry["chosen"] else ""
        print(
            f"  {entry['method']:>4}{beta} C={entry['num_candidates']:<4} H={entry['horizon']:<3} "
            f"{entry['model_steps']:>7} model steps  true {truth}  tta {entry['tta']['mean']:8.1f}{mark}"
        )
    print(f"total time: {results['timing']['total_s']:.1f} s")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_flags(parser, "planner_choice")
    parser.add_argument("--methods", nargs="+", default=["cem", "icem"], choices=("cem", "icem", "mppi"))
    parser.add_argument("--candidates", type=int, nargs="+", default=[50, 100, 200, 400], help="sequences C")
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 15, 25], help="horizons H")
    parser.add_argument(
        "--noise_exponents", type=float, nargs="+", help="iCEM's colored-noise exponents (default: the family's)"
    )
    add_program_flags(parser, threads=1)  # --quick: the quick sizes and a 2 x 2 grid
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Measure the grid for every seed; write planner_choice.json and planner_choice.png; returns the JSON."""
    parser = build_parser()
    args = parser.parse_args(argv)
    executor = executor_from_flags(parser, args)
    start, code = time.perf_counter(), provenance(command_line(argv), "cpu")  # the code as the runs start
    out_dir = args.out_dir or Path("runs") / f"planner_choice-{args.env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress and executor.in_process
    runs = executor.map(
        choose_one_seed, [(args, seed, out_dir, progress) for seed in args.seeds], [f"seed {s}" for s in args.seeds]
    )
    results = assemble(runs, args, time.perf_counter() - start)
    results["provenance"] = {**code, "device": device_name(resolve_device(results["config"]["device"]))}
    atomic_write_json(results, out_dir / "planner_choice.json")
    write_planner_choice_plot(results, out_dir / "planner_choice.png")
    if not args.no_progress:
        print_table(results)
    return results


if __name__ == "__main__":
    main()
