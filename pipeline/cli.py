"""The command line of the pipeline (`python main.py`, or the `ssm-metarl` console script); see
pipeline/run.py for the stages.

Meta-RL with a state space model, end to end:

1. Sample disjoint train / val / test / OOD tasks of the environment's task family (splits defined by
   the coefficients the dynamics depend on); collect random-policy transitions on the train tasks.
2. Meta-train a world model (an SSM by default; --world_model gru or mlp) with MetaMAML, an ERM baseline and an
   oracle (ERM given the task's coefficients) on the same windows; the last epochs (as many as --env_steps
   leaves rounds for) first add on-policy data (planner + test-time adaptation), and the learning curve records
   val-task return against environment steps.
3. Select ERM's fine-tuning on val tasks, then prediction MSE on test and OOD tasks after 0, 1, 5 steps.
4. Control with an MPC planner on test and OOD tasks: with and without test-time adaptation, memory only,
   oracle, random and the true dynamics, several episodes per task with paired reset seeds.
5. Write config.json, metrics.json, checkpoint.pt and plots; with several seeds, summary.json/.md too.

    python main.py --env_name Pendulum-v1
    python main.py --env_name Pendulum-v1 --seeds 0 1 2      # one run per seed + the paired summary
    python main.py --quick                                   # seconds-long smoke run
    python main.py --env_steps 28800 --planner.method icem   # a sample budget (8 on-policy rounds), iCEM
    python main.py --out_dir runs/x --resume                 # continue a killed run
    python main.py --threads 1 ...                           # one core: two runs side by side do not oversubscribe
    python main.py --seeds 0 1 2 3 --jobs 2                  # two seeds at once in local worker processes
    python main.py --seeds 0 1 2 3 --executor ray --ray_address auto   # each seed a Ray task on a cluster

`--algo rl2` trains an RL² policy instead (PPO; its SSM or GRU memory adapts within a trial of several
episodes), with an oracle and a random baseline, and reports the return of each episode of a trial:

    python main.py --algo rl2 --env_name PointNavigation-v0 [--rl2_memory gru] [--rl2.iterations 100]
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import gymnasium as gym

from core.settings import SettingError
from env_runner.families import TASK_FAMILIES
from meta_rl.distributed import launched_rank_and_world_size
from pipeline.config import PipelineConfig, check_resumable, resolve_device
from pipeline.console import OneLineParser, quiet_warnings, warn
from pipeline.flags import (
    add_program_flags,
    add_setting_flags,
    config_from_flags,
    executor_from_flags,
    threads_from_flags,
)
from pipeline.provenance import command_line
from pipeline.report.markdown import summary_markdown
from pipeline.report.tensorboard import TENSORBOARD_EXTRA
from pipeline.report.tensorboard import check_available as check_tensorboard
from pipeline.run_folder import RunFolderLock, check_writable, clear_run, holds_a_run, seed_folders
from pipeline.seeds import read_run_checkpoint, run_seeds
from pipeline.training import TrainingDiverged
from pipeline.world import as_saved, family_and_config


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        description=__doc__,
        epilog=f"task families (--env_name): {', '.join(TASK_FAMILIES)}; any other gymnasium id runs as a "
        "single task with --no-control",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_flags(parser)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="several seeds: one run each in <out_dir>/seed_<S>/ (--seed: the run in <out_dir> itself)",
    )
    parser.add_argument("--out_dir", type=Path, help="output folder (default runs/<env>-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out_dir from its checkpoints")
    parser.add_argument(
        "--overwrite", action="store_true", help="remove the run already in --out_dir first (its files only)"
    )
    parser.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help=f"log the training curves to DIR as they are made (seed_<S>/ per seed; needs {TENSORBOARD_EXTRA})",
    )
    add_program_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Parse and check everything, then run; returns the summary over seeds (summary.json). Nothing is written
    before every check has passed. Ctrl-C ends with one line that says how to continue, and exit status 130."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        parser.error(f"--seed {args.seed} and --seeds {' '.join(map(str, args.seeds))}: give one of them")
    config = config_from_flags(parser, args)
    try:
        config = replace(config, device=resolve_device(config.device))
        family_and_config(config)  # the family exists and agrees with the config and the machine, before any work
    except SettingError as error:
        parser.error(f"--{error}")
    except (ValueError, gym.error.Error) as error:
        parser.error(str(error))
    executor = executor_from_flags(parser, args)
    if config.algo == "mbrl" and config.control and config.planner.horizon > config.episode_steps:
        warn(
            f"--planner.horizon {config.planner.horizon} is longer than an episode (--episode_steps "
            f"{config.episode_steps}): every plan imagines steps the episode never reaches, at their cost"
        )
    if args.tensorboard is not None:
        try:
            check_tensorboard()
        except RuntimeError as error:
            parser.error(str(error))
    launched_rank, launched_world_size = launched_rank_and_world_size()
    if launched_world_size > 1:
        if not executor.in_process:
            parser.error("under torchrun every process trains the same run: leave --jobs at 1 and --executor local")
        if args.overwrite:
            parser.error(
                "under torchrun the processes would clear the folder while others write: remove the old run first"
            )
    seeds = args.seeds if args.seeds is not None else [config.seed]
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds must be distinct ints >= 0, got {' '.join(map(str, seeds))}")
    out_dir = args.out_dir or Path("runs") / f"{config.env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    folders = {seed: out_dir / f"seed_{seed}" if args.seeds is not None else out_dir for seed in seeds}
    check_out_dir(parser, args, config, out_dir, folders)
    speaks = launched_rank == 0  # torchrun: rank 0 speaks, and holds the folder for every rank
    progress = speaks and not args.no_progress  # --no_progress hides the progress, not where the results went
    try:
        hold = RunFolderLock(out_dir) if launched_rank == 0 else contextlib.nullcontext()
    except ValueError as error:
        parser.error(str(error))
    with hold, threads_from_flags(args, executor):
        if speaks:
            print(f"output folder: {out_dir}", flush=True)
        if args.overwrite:
            clear_run(out_dir)
        try:
            summary = run_seeds(
                config,
                seeds,
                out_dir,
                resume=args.resume,
                progress=progress,
                per_seed_dirs=args.seeds is not None,
                executor=executor,
                argv=command_line(argv),
                tensorboard=args.tensorboard,
            )
        except KeyboardInterrupt:
            command = continue_command(argv, out_dir, folders)
            print(f"\ninterrupted: {out_dir} keeps every finished epoch; continue with: {command}")
            raise SystemExit(130) from None
        except RuntimeError as error:
            if not isinstance(error, TrainingDiverged) and not isinstance(error.__cause__, TrainingDiverged):
                raise
            raise SystemExit(f"{parser.prog}: error: {error}") from None
    if speaks and summary:
        print(summary_markdown(summary), f"\noutput folder: {out_dir}", sep="\n", flush=True)
    return summary


def check_out_dir(
    parser: argparse.ArgumentParser, args: argparse.Namespace, config, out_dir: Path, folders: dict[int, Path]
) -> None:
    """The output folder can take this run: writable; without --resume, no earlier run in it (unless --overwrite);
    with --resume, a checkpoint whose config is this one. Every refusal is the parser's error, before any write."""
    try:
        check_writable(out_dir)
    except ValueError as error:
        parser.error(str(error))
    if args.resume and args.overwrite:
        parser.error("--resume continues the run in --out_dir and --overwrite removes it: give one of them")
    if not args.resume:
        if holds_a_run(out_dir) and not args.overwrite:
            parser.error(
                f"--out_dir {out_dir} already holds a run: continue it with --resume, or replace it with --overwrite"
            )
        return
    if args.seeds is not None:
        held = sorted(int(folder.name[5:]) for folder in seed_folders(out_dir) if holds_a_run(folder))
        left_out = [seed for seed in held if seed not in folders]
        if left_out:
            every = " ".join(map(str, sorted({*held, *folders})))
            parser.error(
                f"--out_dir {out_dir} holds seeds {' '.join(map(str, held))}: resuming without seed "
                f"{' '.join(map(str, left_out))} would rewrite its summary over the others; give --seeds {every}"
            )
    checkpoints = {seed: folder / "checkpoint.pt" for seed, folder in folders.items()}
    if not any(path.is_file() for path in checkpoints.values()):
        parser.error(f"--resume needs an existing checkpoint, none of {[str(p) for p in checkpoints.values()]} exists")
    for seed, path in checkpoints.items():
        try:
            state = read_run_checkpoint(path, config.algo) if path.is_file() else None
        except ValueError:  # unreadable: run_seeds says so and starts that seed again
            continue
        if state is not None:
            try:
                check_resumable(PipelineConfig.from_dict(state["config"]), as_saved(replace(config, seed=seed)), path)
            except ValueError as error:
                parser.error(str(error))


def continue_command(argv: list[str] | None, out_dir: Path, folders: dict[int, Path]) -> str:
    """The command line that continues this run: the same flags with --out_dir named and --resume where a checkpoint
    was written; before the first checkpoint, the same run again with --overwrite (there is nothing to resume)."""
    program, *flags = command_line(argv)
    flags = [flag for flag in flags if flag not in ("--overwrite", "--resume")]
    if "--out_dir" not in flags:
        flags += ["--out_dir", str(out_dir)]
    started = any((folder / "checkpoint.pt").is_file() for folder in folders.values())
    flags.append("--resume" if started else "--overwrite")
    prefix = f"python {program}" if program.endswith(".py") else program
    return shlex.join([*prefix.split(), *flags])


def console_main() -> None:
    """The program: `main` with warnings printed as one line each (whose returned summary would otherwise be the
    exit status); `python main.py` and the `ssm-metarl` console script."""
    quiet_warnings()
    main()
