"""Every published number from one command: the runs behind docs/results/ (`experiments.published`), their
summaries, the programs over them, the comparisons, the overview table and the pages that quote them.

    python experiments/reproduce.py --jobs 2                              # everything, at the published seed counts
    python experiments/reproduce.py --only pendulum tta_vs_rl2_pointnav   # some folders (and what they need)
    python experiments/reproduce.py --publish_only                        # publish what has finished, run nothing
    python experiments/reproduce.py --executor ray --ray_address auto     # each run a Ray task on a cluster
    python experiments/reproduce.py --quick --results /tmp/r --only pendulum   # the whole chain in a minute

Runs live in --runs (default runs/reproduce/<folder>/seed_<S>/, checkpoints included), one torch thread each
unless --threads says otherwise. A second call continues them: a finished seed is read back (its saved config must
be the table's), one with a checkpoint resumes, the others start; the longest runs start first. Every run of a
--runs folder comes from one commit of a clean checkout: the first call records it in <runs>/reproduce.json and a
call from other code is refused (check that commit out, e.g. in a `git worktree`, to continue). Each run's
provenance records the main.py command that reruns that seed alone. --only brings along what a folder needs: the
runs whose checkpoints a program reads (a compute sweep's), and the published folders a program or a comparison
reads unless they are already published from this commit.

A folder is published once all its seeds have finished: <results>/<folder>/seed_<S>_metrics.json (its earlier
seed files removed first) and summary.json. Then each program whose folders are published runs once (its output
kept in --runs, copied to <results>), each comparison whose two folders are published is drawn, and the memory
comparison over the POPGym folders published so far; the model-based folders go into <results>/overview.json,
<results>/reproduce.json records the commit, the seeds and the machine time of every published folder, and the pages
of --pages (README.md, docs/) are re-rendered. A failed run does not stop the others; what finished is published
before the failure is reported (the pages wait for a call that succeeds).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from core.checkpoint import atomic_write_json
from experiments.published import (
    COMPARISONS,
    FOLDERS,
    MEMORIES,
    PROGRAMS,
    RUNS,
    PublishedComparison,
    PublishedMemories,
    PublishedProgram,
    PublishedRuns,
)
from pipeline import cli
from pipeline.config import PipelineConfig, check_resumable, resolve_device
from pipeline.console import OneLineParser
from pipeline.executor import Executor
from pipeline.flags import add_program_flags, config_from_flags, executor_from_flags
from pipeline.provenance import provenance
from pipeline.report.comparison import write_comparison
from pipeline.report.memories import write_memories
from pipeline.report.overview import write_overview
from pipeline.report.pages import refresh_pages
from pipeline.report.summary import check_poolable, recompute
from pipeline.run import run
from pipeline.run_folder import clear_run
from pipeline.world import as_saved

QUICK_SEEDS = 2
PROGRAM_OUTPUTS = ("*.json", "*.png")


def run_flags(entry: PublishedRuns, seed: int, quick: bool) -> list[str]:
    """main.py's flags for one seed of `entry`."""
    return [*entry.flags, "--seed", str(seed), *(["--quick"] if quick else [])]


def seed_config(entry: PublishedRuns, seed: int, quick: bool) -> PipelineConfig:
    """The config main.py builds from `run_flags` (SystemExit naming the flag where the table is wrong)."""
    parser = cli.build_parser()
    config = config_from_flags(parser, parser.parse_args(run_flags(entry, seed, quick)))
    return replace(config, device=resolve_device(config.device))


def run_seed(config: PipelineConfig, folder: Path, argv: list[str], progress: bool) -> dict:
    """One seed in `folder`: read back when finished, resumed from its checkpoint, else started afresh (a start
    killed before its first checkpoint is cleared first). Returns its metrics; `progress` prints a line at the end."""
    metrics_path = folder / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        check_resumable(PipelineConfig.from_dict(metrics["config"]), as_saved(config), folder)
        return metrics
    resume = (folder / "checkpoint.pt").is_file()
    if not resume:
        clear_run(folder)
    metrics = run(config, folder, resume=resume, progress=False, argv=argv)
    if progress:
        print(f"{folder}: finished in {metrics['timing']['total_s']:.0f} s", flush=True)
    return metrics


def check_commit(runs_dir: Path, quick: bool) -> str:
    """The commit of this code, recorded in <runs>/reproduce.json on the first call; ValueError when the checkout
    has uncommitted changes (unless `quick`) or the folder's runs come from another commit."""
    record = provenance([], "cpu")
    commit = record["git_commit"]
    if record["git_dirty"] and not quick:
        raise ValueError("the checkout has uncommitted changes: commit them, so every run comes from one commit")
    path = runs_dir / "reproduce.json"
    if path.is_file():
        started = json.loads(path.read_text())["commit"]
        if started != commit:
            raise ValueError(
                f"{runs_dir} holds runs of commit {started}, this code is {commit}: continue from a checkout of "
                f"{started} (git worktree add DIR {started}), or give a new --runs folder"
            )
    else:
        runs_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json({"commit": commit}, path)
    return commit


def run_all(
    entries: list[PublishedRuns], seeds: dict[str, int], runs_dir: Path, quick: bool, executor: Executor, progress: bool
) -> None:
    """Every seed of `entries`, longest first, through `executor` (RuntimeError naming failures, once all ended)."""
    jobs = sorted(
        ((entry, seed) for entry in entries for seed in range(seeds[entry.folder])), key=lambda job: -job[0].minutes
    )
    arguments = [
        (
            seed_config(entry, seed, quick),
            runs_dir / entry.folder / f"seed_{seed}",
            ["main.py", *run_flags(entry, seed, quick), "--threads", str(executor.worker_threads())],
            progress,
        )
        for entry, seed in jobs
    ]
    if progress:
        print(f"{len(jobs)} runs in {runs_dir} ({executor.kind}), the longest first", flush=True)
    executor.map(run_seed, arguments, [f"{entry.folder} seed {seed}" for entry, seed in jobs])


def finished_seeds(runs_dir: Path, entry: PublishedRuns, count: int) -> list[Path] | None:
    """The metrics.json of each of the first `count` seeds, None while any has not finished."""
    paths = [runs_dir / entry.folder / f"seed_{seed}" / "metrics.json" for seed in range(count)]
    return paths if all(path.is_file() for path in paths) else None


def publish_runs(entry: PublishedRuns, paths: list[Path], results: Path) -> dict:
    """<results>/<folder>/seed_<S>_metrics.json (the earlier ones removed) and its summary.json. Runs that cannot
    be pooled are refused (ValueError) before the published folder is touched."""
    runs = [json.loads(path.read_text()) for path in paths]
    check_poolable(runs)
    folder = results / entry.folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed_*_metrics.json"):
        old.unlink()
    for seed, path in enumerate(paths):
        shutil.copyfile(path, folder / f"seed_{seed}_metrics.json")
    recompute(folder)
    return {"seeds": len(runs), "machine_s": sum(run["timing"]["total_s"] for run in runs)}


def program_argv(program: PublishedProgram, runs_dir: Path, results: Path, executor_flags: list[str], quick: bool):
    """The program's command line: placeholders filled, the executor's flags; --quick with its quick values."""
    flags = [flag.format(runs=runs_dir, results=results, out=runs_dir / program.folder) for flag in program.flags]
    if quick:
        for name, values in program.quick_values:
            flags = with_flag_values(flags, name, values)
        flags.append("--quick")
    return [*flags, *executor_flags, "--no_progress"]


def with_flag_values(flags: list[str], name: str, values: tuple[str, ...]) -> list[str]:
    """`flags` with the values after flag `name` (up to the next flag) replaced by `values`."""
    start = flags.index(name) + 1
    end = next((index for index in range(start, len(flags)) if flags[index].startswith("--")), len(flags))
    return [*flags[:start], *values, *flags[end:]]


def ready_programs(selected: list[str], record: dict, commit: str) -> list[PublishedProgram]:
    """The selected programs whose folders are all published from this commit's runs."""
    published = published_from(record, commit)
    return [
        program for program in PROGRAMS if program.folder in selected and set().union(*needed(program)) <= published
    ]


def published_from(record: dict, commit: str) -> set[str]:
    """The folders of a reproduce.json `record` published from `commit`'s runs."""
    return {name for name, folder in record["folders"].items() if folder.get("commit") == commit}


def read_record(results: Path) -> dict:
    """<results>/reproduce.json, or an empty record before the first publication."""
    path = results / "reproduce.json"
    return json.loads(path.read_text()) if path.is_file() else {"folders": {}}


def run_program(program: PublishedProgram, argv: list[str], runs_dir: Path, results: Path) -> None:
    """The program, unless its output is already in --runs; then its outputs copied to <results>/<folder>."""
    out = runs_dir / program.folder
    if not any(out.glob("*.json")):
        importlib.import_module(program.module).main(argv)
    target = results / program.folder
    target.mkdir(parents=True, exist_ok=True)
    for pattern in PROGRAM_OUTPUTS:
        for path in out.glob(pattern):
            shutil.copyfile(path, target / path.name)


def publish(
    selected: list[str], seeds: dict[str, int], runs_dir: Path, results: Path, commit: str, pages_root: Path | None
) -> dict:
    """Publish every selected folder whose runs have finished; then the overview, reproduce.json and the pages of the
    checkout at `pages_root`."""
    record = read_record(results)
    for entry in RUNS:
        paths = finished_seeds(runs_dir, entry, seeds.get(entry.folder, 0)) if entry.folder in selected else None
        if paths is not None:
            record["folders"][entry.folder] = {"commit": commit, **publish_runs(entry, paths, results)}
    published = published_from(record, commit)
    for comparison in COMPARISONS:  # both sides from this commit's runs: never a new folder against an older one
        if comparison.folder in selected and {comparison.mbrl, comparison.rl2} <= published:
            write_comparison(results / comparison.mbrl, results / comparison.rl2, results / comparison.folder)
    for memories in MEMORIES:  # over the tasks published from this commit, as they land
        drawn = [
            results / name
            for folders in memories.tasks
            if folders[0] in published
            for name in folders
            if name in published
        ]
        if memories.folder in selected and drawn:
            write_memories(drawn, memories.baseline, results / memories.folder)
    model_based = [
        results / entry.folder
        for entry in RUNS
        if "--algo" not in entry.flags and (results / entry.folder / "summary.json").is_file()
    ]
    if model_based:
        write_overview(model_based, results / "overview.json")
    record["machine_s"] = sum(folder["machine_s"] for folder in record["folders"].values())
    atomic_write_json(record, results / "reproduce.json")
    if pages_root is not None:
        refresh_pages(pages_root)
    return record


def check_known(only: list[str] | None) -> None:
    """ValueError naming the folders of `only` that are not published ones."""
    unknown = sorted(set(only or ()) - set(FOLDERS))
    if unknown:
        raise ValueError(f"--only: unknown folders {unknown}; the published ones are {sorted(FOLDERS)}")


def selection(only: list[str] | None, published: set[str]) -> list[str]:
    """The folders to regenerate: `only` with what they need, else all. The runs a program reads from {runs}
    always come along (it needs their checkpoints); the published folders a program or a comparison reads come
    along only when they are not in `published` (the folders already published from this commit)."""
    if only is None:
        return list(FOLDERS)
    chosen = set(only)
    for entry in (*PROGRAMS, *COMPARISONS, *MEMORIES):
        if entry.folder in only:
            runs, reads = needed(entry)
            chosen |= runs | (reads - published)
    return [name for name in FOLDERS if name in chosen]


def needed(entry: PublishedProgram | PublishedComparison | PublishedMemories) -> tuple[set[str], set[str]]:
    """The run folders `entry` reads from {runs} and the published folders it reads from {results}."""
    if isinstance(entry, PublishedComparison):
        return set(), {entry.mbrl, entry.rl2}
    if isinstance(entry, PublishedMemories):
        return set(), set(entry.runs)
    return set(entry.needs_runs), set(entry.needs_published)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help="these results folders (and those they need), not all")
    parser.add_argument("--seeds", type=int, help=f"seeds per run folder (default: the table's; {QUICK_SEEDS} quick)")
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce"), help="where the runs live (resumable)")
    parser.add_argument("--results", type=Path, default=Path("docs/results"), help="where results are published")
    parser.add_argument("--pages", type=Path, help="the checkout whose README.md and docs/ are re-rendered (default .)")
    parser.add_argument("--publish_only", action="store_true", help="publish what has finished, run nothing")
    add_program_flags(parser, threads=1)
    return parser


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    executor = executor_from_flags(parser, args)
    if args.quick and args.results == parser.get_default("results"):
        parser.error("--quick would replace the published results: give --results (and --pages) elsewhere")
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    pages_root = args.pages or (None if args.quick else Path("."))
    if pages_root is not None and not (pages_root / "README.md").is_file():
        parser.error(f"--pages {pages_root} is not a checkout: it holds no README.md")
    try:
        check_known(args.only)
        commit = check_commit(args.runs, args.quick)
    except ValueError as error:
        parser.error(str(error))
    selected = selection(args.only, published_from(read_record(args.results), commit))
    count = args.seeds or (QUICK_SEEDS if args.quick else None)
    seeds = {entry.folder: count or entry.seeds for entry in RUNS}
    entries = [entry for entry in RUNS if entry.folder in selected]
    executor_flags = ["--jobs", str(args.jobs), "--threads", str(executor.worker_threads()), "--executor"]
    executor_flags += [args.executor, *(["--ray_address", args.ray_address] if args.ray_address else [])]
    try:
        if not args.publish_only:
            run_all(entries, seeds, args.runs, args.quick, executor, not args.no_progress)
    finally:  # what finished is published even when a run failed; the pages wait for a call that succeeds
        record = publish(selected, seeds, args.runs, args.results, commit, None)
    for program in ready_programs(selected, record, commit):
        if not args.publish_only or any((args.runs / program.folder).glob("*.json")):
            argv_program = program_argv(program, args.runs, args.results, executor_flags, args.quick)
            run_program(program, argv_program, args.runs, args.results)
    return publish(selected, seeds, args.runs, args.results, commit, pages_root)


if __name__ == "__main__":
    main(sys.argv[1:])
