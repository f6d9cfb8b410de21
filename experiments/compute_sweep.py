"""The test-time compute sweep: what more test-time compute buys the meta-learned world model in control.

    python experiments/compute_sweep.py --env_name Pendulum-v1 --seeds 0 1 2 [--from_run RUN_DIR] [--out_dir DIR]
    python experiments/compute_sweep.py --quick          # tiny model, two values per knob: a smoke run
    python experiments/compute_sweep.py --seeds 0 1 2 --jobs 2   # seeds at once (their timings then share the cores)

For every seed a trained world comes from `--from_run RUN_DIR` (a finished `main.py` run:
`RUN_DIR/seed_<S>/checkpoint.pt` with its saved config; the task splits are re-sampled from it) or from the
pipeline's own data and training stages (`pipeline.world.train_world`, checkpointed to `DIR/seed_<S>/`).
Then one knob at a time moves around the defaults, the others staying at theirs:

                                                                 --grid full (default)        --grid thin
    adapt.num_steps         inner steps per test-time update     0, 1, 2, 5, 10               0, 5
    adapt.window            transitions adapted on               8, 16, 32, 64                8, 64
    planner.num_candidates  CEM candidates per iteration         50, 100, 200, 400, 800, 1600 50, 400
    planner.horizon         CEM horizon                          10, 15, 25                   10, 25

(the default of each knob is always among its values: the thin grid is the default and one value each side).
Each setting runs the "tta" condition on the val tasks, then on the test tasks (the first `control_tasks` of each,
`control_episodes` episodes each, with the pipeline's reset and planner seeds, so every setting is paired with
every other per task), timing wall-clock seconds per environment step. Random and true-dynamics returns are
measured once per split (at the default planner) for the normalised score of each (seed, task), (R - R_random) /
(R_true - R_random) with the references averaged over the seed's tasks (`pipeline.report.statistics`). The
adaptation knobs also report prediction MSE: held-out windows whose support is `adapt.window` long, query MSE
after `adapt.num_steps` MetaMAML inner steps (`pipeline.prediction.window_errors`).

Choice (per knob, val tasks only): the value with the best mean val normalised score (the return where there
are no true dynamics); every value whose val mean lies inside that best value's 95% interval counts as a tie,
and the cheapest of those (fewest multiply-adds per step) is chosen. Test numbers are reported, never read.

Multiply-adds (MACs) per environment step, from the SSM's shapes (D input, H hidden, N state, R = rate rank,
O output):

    per token   m = D*H + 2*H*N + H*R + R*N + N*O + 3*N        projections, then recurrence and gated readout
    planner     iterations * candidates * horizon * m          every candidate rolled through the model
    adaptation  (3 * num_steps + p) * window * m / update_every
                3 per inner step (forward + backward ~ 3 forwards); p forward passes over the window per
                update: the loss at theta* and the state recomputed under the kept weights, plus the adapted
                loss when num_steps > 0 (p = 2 or 3)
    observe     m                                              the real transition advances the state
    total       planner + adaptation + observe

Outputs: `DIR/compute_sweep.json` (schema below) and `DIR/compute_sweep.png` (normalised score against MACs per
step, log x, one line per knob, val and test markers, defaults ringed, chosen values starred).

    {"env_name", "seeds", "quick", "grid", "from_run", "config": {...defaults (first seed's)},
     "model": {"input_dim", "hidden_dim", "state_dim", "rate_rank", "output_dim", "macs_per_token"},
     "reference": {"val"|"test": {"random"|"true_dynamics": summary}},
     "selection": "...the rule above...",
     "knobs": {knob: {"default": value, "chosen": value, "values": {str(value): {
         "value", "default": bool, "chosen": bool,
         "macs_per_step", "macs": {"planner", "adaptation", "observe"},
         "val"|"test": {"return": summary, "normalized_score": summary | null, "mse": summary | null,
                        "seconds_per_step": mean over seeds, "seconds_per_step_per_seed": [...]}}}}},
     "timing": {"total_s"}, "provenance": {...} (`pipeline.provenance`)}
    summary = {"mean", "ci95": [lo, hi], "n", "per_seed": [mean of each seed], "per_task": [one per (seed, task)],
               "over_seeds", "bootstrap_ci95"}      (`pipeline.report.statistics.pooled`)
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from core.checkpoint import atomic_write_json
from core.progress import progress_bar
from core.settings import override
from core.ssm import SSM
from experiments.plots import write_compute_sweep_plot
from experiments.worlds import add_world_flags, world_for_seed
from pipeline.config import PipelineConfig, resolve_device
from pipeline.console import OneLineParser
from pipeline.control import condition_returns, episodes_per_task, planner_rollouts
from pipeline.data import held_out_windows
from pipeline.flags import add_program_flags, executor_from_flags
from pipeline.prediction import maml_adapter, window_errors
from pipeline.provenance import command_line, device_name, provenance
from pipeline.report.statistics import normalized_scores, per_task_means, pooled
from pipeline.world import World
from planning.episode import first_episode_returns
from planning.true_dynamics import has_true_dynamics

FULL_VALUES: dict[str, tuple[int, ...]] = {
    "adapt.num_steps": (0, 1, 2, 5, 10),
    "adapt.window": (8, 16, 32, 64),
    "planner.num_candidates": (50, 100, 200, 400, 800, 1600),
    "planner.horizon": (10, 15, 25),
}
THIN_VALUES: dict[str, tuple[int, ...]] = {  # --grid thin: one value each side of the usual defaults
    "adapt.num_steps": (0, 5),
    "adapt.window": (8, 64),
    "planner.num_candidates": (50, 400),
    "planner.horizon": (10, 25),
}
QUICK_VALUES: dict[str, tuple[int, ...]] = {  # around the --quick defaults (1, 8, 32, 5)
    "adapt.num_steps": (0, 1),
    "adapt.window": (4, 8),
    "planner.num_candidates": (16, 32),
    "planner.horizon": (3, 5),
}
ADAPTATION_KNOBS = ("adapt.num_steps", "adapt.window")
SPLITS = ("val", "test")
SELECTION = (
    "per knob, on val tasks only: the best mean val normalised score (return without true dynamics); values whose "
    "val mean lies inside the best one's 95% interval tie, and the one with the fewest MACs per step is chosen"
)


# ----------------------------------------------------------------------------- settings and cost
def knob_value(config: PipelineConfig, knob: str) -> int:
    """The value of `knob` ("adapt.window", "planner.horizon", ...) in `config`."""
    group, name = knob.split(".")
    return getattr(getattr(config, group), name)


def with_knob(config: PipelineConfig, knob: str, value: int) -> PipelineConfig:
    """`config` with `knob` set to `value`, every other setting unchanged."""
    group, name = knob.split(".")
    return override(config, {group: {name: value}})


def setting_key(config: PipelineConfig) -> tuple[int, ...]:
    """What tells two settings of the sweep apart (the shared default is evaluated once)."""
    return tuple(knob_value(config, knob) for knob in FULL_VALUES)


def token_macs(model: SSM) -> int:
    """Multiply-adds of one SSM step: D*H + 2*H*N + H*R + R*N + N*O + 3*N (module docstring)."""
    d, h, n, r, o = model.input_dim, model.hidden_dim, model.state_dim, model.dt_rank, model.output_dim
    return d * h + 2 * h * n + h * r + r * n + n * o + 3 * n


def macs_per_step(model: SSM, config: PipelineConfig) -> dict[str, float]:
    """Multiply-adds per environment step of the "tta" condition: {"planner", "adaptation", "observe", "total"}."""
    per_token = token_macs(model)
    planner = config.planner
    adapt = config.adapt
    passes = 3 * adapt.num_steps + (3 if adapt.num_steps > 0 else 2)
    cost = {
        "planner": float(planner.num_iterations * planner.num_candidates * planner.horizon * per_token),
        "adaptation": passes * adapt.window * per_token / adapt.update_every,
        "observe": float(per_token),
    }
    cost["total"] = sum(cost.values())
    return cost


# ----------------------------------------------------------------------------- measurements
def tta_returns(world: World, config: PipelineConfig, split: str) -> tuple[list[float], float]:
    """Per-task mean "tta" return on the split's control tasks under `config`, and seconds per environment step."""
    start = time.perf_counter()
    rollouts = planner_rollouts(world, config, split, "tta")
    seconds = time.perf_counter() - start
    returns = per_task_means(first_episode_returns(rollouts), config.control_episodes)
    return returns, seconds / (rollouts.num_envs * rollouts.steps)


def reference_returns(world: World, split: str) -> dict[str, list[float]]:
    """Per-task mean return of random actions and (where available) of the planner on the true dynamics."""
    conditions = ("random", "true_dynamics") if has_true_dynamics(world.family) else ("random",)
    return {
        name: per_task_means(condition_returns(world, world.config, split, name), episodes_per_task(world.config, name))
        for name in conditions
    }


def prediction_mse(world: World, config: PipelineConfig, split: str) -> list[float]:
    """Per-task query MSE after `adapt.num_steps` inner steps on supports of `adapt.window` transitions, on
    `eval_windows_per_task` held-out windows of every task of the split."""
    windows_config = replace(config, support_len=config.adapt.window)
    tasks = world.splits.as_dict()[split]
    batch = held_out_windows(world.family, tasks, split, world.normalizer, windows_config, progress=False)
    k = config.adapt.num_steps
    return window_errors(maml_adapter(world), batch, (k,), head=world.models.head)[str(k)]


def control_measurements(world: World, config: PipelineConfig) -> dict:
    """{split: {"return": [per task], "seconds_per_step": s}}, val first, then test."""
    result = {}
    for split in SPLITS:
        returns, seconds = tta_returns(world, config, split)
        result[split] = {"return": returns, "seconds_per_step": seconds}
    return result


def sweep_values(config: PipelineConfig, quick: bool, grid: str = "full") -> dict[str, list[int]]:
    """Each knob's values (`grid` "full" or "thin"; --quick has its own), its default always among them."""
    table = QUICK_VALUES if quick else {"full": FULL_VALUES, "thin": THIN_VALUES}[grid]
    return {knob: sorted({*values, knob_value(config, knob)}) for knob, values in table.items()}


def sweep_seed(world: World, values: dict[str, list[int]], progress: bool) -> dict:
    """One seed: {"reference": {split: {...}}, "settings": {knob: {value: {split: {"return", "seconds_per_step",
    "mse"}}}}}; a setting shared by several knobs (the default) is measured once."""
    references = {split: reference_returns(world, split) for split in SPLITS}
    control: dict[tuple[int, ...], dict] = {}
    errors: dict[tuple, list[float]] = {}
    settings: dict[str, dict[int, dict]] = {}
    for knob, knob_values in values.items():
        settings[knob] = {}
        for value in progress_bar(knob_values, progress, f"seed {world.config.seed}: {knob} over {knob_values}"):
            config = with_knob(world.config, knob, value)
            key = setting_key(config)
            if key not in control:
                control[key] = control_measurements(world, config)
            entry = {split: {**control[key][split], "mse": None} for split in SPLITS}
            if knob in ADAPTATION_KNOBS:
                for split in SPLITS:
                    if (split, *key) not in errors:
                        errors[(split, *key)] = prediction_mse(world, config, split)
                    entry[split]["mse"] = errors[(split, *key)]
            settings[knob][value] = entry
    return {"reference": references, "settings": settings}


# ----------------------------------------------------------------------------- results
def pooled_pairs(per_seed: list[list[float]]) -> dict:
    """`pipeline.report.statistics.pooled` over (seed, task) pairs, with the pairs' values as "per_task"."""
    return {**pooled(per_seed), "per_task": [value for values in per_seed for value in values]}


def split_entry(per_seed: list[dict], references: list[dict], split: str) -> dict:
    """One knob value on one split, pooled over seeds (module docstring's "val"|"test" entry)."""
    returns = [seed[split]["return"] for seed in per_seed]
    seconds = [seed[split]["seconds_per_step"] for seed in per_seed]
    score = None
    if "true_dynamics" in references[0][split]:
        scores = [
            normalized_scores(r, ref[split]["random"], ref[split]["true_dynamics"])
            for r, ref in zip(returns, references, strict=True)
        ]
        ranged = [seed for seed in scores if seed is not None]  # a seed whose references tie has no score
        score = pooled_pairs(ranged) if ranged else None
    mse = None if per_seed[0][split]["mse"] is None else pooled_pairs([seed[split]["mse"] for seed in per_seed])
    return {
        "return": pooled_pairs(returns),
        "normalized_score": score,
        "mse": mse,
        "seconds_per_step": sum(seconds) / len(seconds),
        "seconds_per_step_per_seed": seconds,
    }


def cheapest_tie(val: dict[str, dict], macs: dict[str, float]) -> str:
    """The chosen value (a key of `val`) from val summaries {"mean", "ci95"} and MACs per step alone.

    Best mean first; every value whose mean lies inside the best one's 95% interval ties with it, and the one
    with the fewest MACs wins (a nan interval bound: only values at least as good as the best tie).
    """
    finite = {key: summary for key, summary in val.items() if math.isfinite(summary["mean"])}
    if not finite:
        return min(val, key=macs.get)
    best = max(finite, key=lambda key: finite[key]["mean"])
    low = finite[best]["ci95"][0]
    threshold = low if math.isfinite(low) else finite[best]["mean"]
    ties = [key for key, summary in finite.items() if summary["mean"] >= threshold]
    return min(ties, key=lambda key: (macs[key], key != best))


def selection_score(split_result: dict) -> dict:
    """What a choice ranks by: the normalised score, or the return where there are no true dynamics."""
    return split_result["normalized_score"] or split_result["return"]


def knob_results(knob: str, seeds: list[dict], default: int, model: SSM, config: PipelineConfig) -> dict:
    """One knob's entry: {"default", "chosen", "values": {str(value): {...}}} (module docstring)."""
    references = [seed["reference"] for seed in seeds]
    values = {}
    for value in seeds[0]["settings"][knob]:
        per_seed = [seed["settings"][knob][value] for seed in seeds]
        cost = macs_per_step(model, with_knob(config, knob, value))
        values[str(value)] = {
            "value": value,
            "default": value == default,
            "macs_per_step": cost["total"],
            "macs": {part: cost[part] for part in ("planner", "adaptation", "observe")},
            **{split: split_entry(per_seed, references, split) for split in SPLITS},
        }
    chosen = cheapest_tie(
        {key: selection_score(entry["val"]) for key, entry in values.items()},
        {key: entry["macs_per_step"] for key, entry in values.items()},
    )
    for key, entry in values.items():
        entry["chosen"] = key == chosen
    return {"default": default, "chosen": values[chosen]["value"], "values": values}


def assemble(runs: list[dict], args: argparse.Namespace, total_s: float) -> dict:
    """The contents of compute_sweep.json (module docstring) from every seed's `sweep_one_seed`."""
    config, model = PipelineConfig.from_dict(runs[0]["config"]), SSM(**runs[0]["model_config"])
    seeds = [run["sweep"] for run in runs]
    references = {
        split: {name: pooled_pairs([seed["reference"][split][name] for seed in seeds]) for name in names}
        for split in SPLITS
        for names in [seeds[0]["reference"][split]]
    }
    return {
        "env_name": config.env_name,
        "seeds": [run["config"]["seed"] for run in runs],
        "quick": args.quick,
        "grid": "quick" if args.quick else args.grid,
        "from_run": None if args.from_run is None else str(args.from_run),
        "config": config.to_dict(),
        "model": {
            "input_dim": model.input_dim,
            "hidden_dim": model.hidden_dim,
            "state_dim": model.state_dim,
            "rate_rank": model.dt_rank,
            "output_dim": model.output_dim,
            "macs_per_token": token_macs(model),
        },
        "reference": references,
        "selection": SELECTION,
        "knobs": {
            knob: knob_results(knob, seeds, knob_value(config, knob), model, config) for knob in seeds[0]["settings"]
        },
        "timing": {"total_s": total_s},
    }


def print_table(results: dict) -> None:
    for knob, entry in results["knobs"].items():
        print(f"{knob} (default {entry['default']}, chosen on val {entry['chosen']})")
        for key, point in entry["values"].items():
            cells = "  ".join(
                f"{split} {selection_score(point[split])['mean']:7.3f} "
                f"({point[split]['seconds_per_step'] * 1e3:.1f} ms/step)"
                for split in SPLITS
            )
            print(f"  {key:>6}  {point['macs_per_step']:12.3g} MACs/step  {cells}")
    print(f"total time: {results['timing']['total_s']:.1f} s")


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_world_flags(parser, "compute_sweep")
    parser.add_argument(
        "--grid", choices=("full", "thin"), default="full", help="the values per knob: the table above, or 3 each"
    )
    add_program_flags(parser, threads=1)  # --quick: the quick sizes and two values per knob
    return parser


def sweep_one_seed(args: argparse.Namespace, seed: int, out_dir: Path, progress: bool) -> dict:
    """One seed: its world (trained, or loaded with --from_run) and every knob's measurements, as picklable data:
    {"config", "model_config" (the SSM's constructor arguments), "sweep" (`sweep_seed`)}."""
    world = world_for_seed(args, seed, out_dir, progress)
    if world.config.world_model != "ssm" or world.config.ensemble_size != 1:
        raise ValueError(
            f"the compute sweep counts one SSM's multiply-adds: {args.from_run} holds a {world.config.world_model} "
            f"world model of {world.config.ensemble_size} member(s)"
        )
    sweep = sweep_seed(world, sweep_values(world.config, args.quick, args.grid), progress)
    return {"config": world.config.to_dict(), "model_config": world.models.maml_model.config, "sweep": sweep}


def main(argv: list[str] | None = None) -> dict:
    """Sweep every knob for every seed (seeds at once with --jobs or --executor ray); write compute_sweep.json and
    compute_sweep.png; returns the JSON's contents."""
    parser = build_parser()
    args = parser.parse_args(argv)
    executor = executor_from_flags(parser, args)
    start, code = time.perf_counter(), provenance(command_line(argv), "cpu")  # the code as the runs start
    out_dir = args.out_dir or Path("runs") / f"compute_sweep-{args.env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress and executor.in_process
    runs = executor.map(
        sweep_one_seed,
        [(args, seed, out_dir, progress) for seed in args.seeds],
        [f"seed {seed}" for seed in args.seeds],
    )
    results = assemble(runs, args, time.perf_counter() - start)
    results["provenance"] = {**code, "device": device_name(resolve_device(results["config"]["device"]))}
    atomic_write_json(results, out_dir / "compute_sweep.json")
    write_compute_sweep_plot(results, out_dir / "compute_sweep.png", selection_score)
    if not args.no_progress:
        print_table(results)
    return results


if __name__ == "__main__":
    main()
