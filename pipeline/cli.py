"""The command line of the pipeline (`python main.py`, or the `ssm-metarl` console script); see
pipeline/run.py for the stages.

Meta-RL with a state space model, end to end:

1. Sample disjoint train / val / test / OOD tasks of the environment's task family (splits defined by
   the coefficients the dynamics depend on); collect random-policy transitions on the train tasks.
2. Meta-train an SSM world model with MetaMAML, an ERM baseline and an oracle (ERM given the task's
   coefficients) on the same windows; the last epochs add on-policy data (planner + test-time adaptation).
3. Select ERM's fine-tuning on val tasks, then prediction MSE on test and OOD tasks after 0, 1, 5 steps.
4. Control with an MPC planner on test and OOD tasks: with and without test-time adaptation, memory only,
   oracle, random and the true dynamics, several episodes per task with paired reset seeds.
5. Write config.json, metrics.json, checkpoint.pt and plots; with several seeds, summary.json/.md too.

    python main.py --env_name Pendulum-v1
    python main.py --env_name Pendulum-v1 --seeds 0 1 2      # one run per seed + the paired summary
    python main.py --quick                                   # seconds-long smoke run
    python main.py --out_dir runs/x --resume                 # continue a killed run
    python main.py --threads 1 ...                           # one core: two runs side by side do not oversubscribe

`--algo rl2` trains an RL² policy instead (PPO; its SSM or GRU memory adapts within a trial of several
episodes), with an oracle and a random baseline, and reports the return of each episode of a trial:

    python main.py --algo rl2 --env_name PointNavigation-v0 [--rl2_memory gru] [--rl2.iterations 100]
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

import torch

from env_runner.environment import make_task_family
from pipeline.config import PipelineConfig, add_config_arguments, config_from_args, defaults_for
from pipeline.rl2_run import read_rl2_checkpoint
from pipeline.run import run_seeds
from pipeline.training import read_training_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="several seeds: one run each in <out_dir>/seed_<S>/ (--seed: the run in <out_dir> itself)",
    )
    parser.add_argument("--out_dir", type=Path, help="output folder (default runs/<env>-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out_dir")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke configuration (tiny sizes)")
    parser.add_argument("--no_progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch.set_num_threads (default: torch's own choice); 1 for runs that share the cores with others",
    )
    return parser


def resolve_device(name: str | None) -> str:
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but torch.cuda.is_available() is False")
    return name


def main(argv: list[str] | None = None) -> dict:
    """Parse, check, run; returns the summary over seeds (summary.json)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        base = defaults_for(args.env_name or PipelineConfig().env_name, args.quick)
        args.device = resolve_device(args.device)
        config = config_from_args(args, base)
        family = make_task_family(config.env_name)
    except ValueError as error:
        parser.error(str(error))
    width = family.model_input_dim
    if config.input_dim not in (None, width):
        parser.error(
            f"--input_dim {config.input_dim} contradicts {config.env_name}: obs_dim {family.obs_dim} "
            f"- {len(family.translation_invariant_obs)} position entries + action_dim {family.action_dim} = {width}"
        )
    if config.algo == "mbrl" and config.control and not family.has_reward_fn:
        parser.error(
            f"{config.env_name} has no closed-form reward for the planner to score imagined trajectories: "
            "pass --no-control"
        )
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    seeds = args.seeds if args.seeds is not None else [config.seed]
    if any(seed < 0 for seed in seeds):
        parser.error(f"--seeds must be >= 0, got {seeds}")
    out_dir = args.out_dir or Path("runs") / f"{config.env_name}-{datetime.now():%Y%m%d-%H%M%S}"
    if args.resume:
        folders = [out_dir / f"seed_{seed}" for seed in seeds] if args.seeds is not None else [out_dir]
        checkpoints = [folder / "checkpoint.pt" for folder in folders]
        if not any(path.is_file() for path in checkpoints):
            parser.error(f"--resume needs an existing checkpoint, none of {[str(p) for p in checkpoints]} exists")
        read_checkpoint = read_rl2_checkpoint if config.algo == "rl2" else read_training_checkpoint
        for path in checkpoints:
            if path.is_file():
                try:
                    read_checkpoint(path)
                except ValueError as error:
                    parser.error(str(error))
    return run_seeds(
        config, seeds, out_dir, resume=args.resume, progress=not args.no_progress, per_seed_dirs=args.seeds is not None
    )


if __name__ == "__main__":
    main()


def console_main() -> None:
    """The `ssm-metarl` console script: runs `main` (whose returned summary would be its exit status)."""
    main()
