"""One run per seed, through the executor, then the summary over them.

run_seeds(config, seeds, out_dir)                       <out_dir>/seed_<S>/ per seed, summary.json/.md beside
run_seeds(config, [S], out_dir, per_seed_dirs=False)    one seed written into <out_dir> itself
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

from pipeline.config import PipelineConfig, check_resumable, resolve_device
from pipeline.executor import Executor
from pipeline.report.summary import write_summary
from pipeline.rl2_run import read_rl2_checkpoint
from pipeline.run import run
from pipeline.training import read_training_checkpoint
from pipeline.world import as_saved


def run_seeds(
    config: PipelineConfig,
    seeds: list[int],
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    per_seed_dirs: bool = True,
    executor: Executor | None = None,
    argv: list[str] | None = None,
    tensorboard: Path | None = None,
) -> dict:
    """One complete run per seed in <out_dir>/seed_<S>/, then summary.json, summary.md and summary_paired.png.

    `resume`: a seed whose metrics.json exists is read back, one with a checkpoint continues from it, the others
    start. `per_seed_dirs=False` (one seed, `--seed S`): the run writes into `out_dir` itself, summary beside it.
    Runs go through `executor` (default: one after another in this process); with several at once they print no
    progress of their own. `tensorboard`: a folder the training curves are logged to (seed_<S>/ per seed).
    """
    if not per_seed_dirs and len(seeds) != 1:
        raise ValueError(f"a run without per-seed folders has one seed, got {seeds}")
    executor = executor or Executor()
    config = replace(config, device=resolve_device(config.device))
    folders = {seed: out_dir / f"seed_{seed}" if per_seed_dirs else out_dir for seed in seeds}
    finished = {}
    for seed, folder in folders.items():
        metrics = finished_metrics(folder) if resume else None
        if metrics is not None:  # a finished seed is read back, not rerun
            saved = PipelineConfig.from_dict(metrics["config"])
            check_resumable(saved, as_saved(replace(config, seed=seed)), folder)
            finished[seed] = metrics
    pending = [seed for seed in seeds if seed not in finished]
    arguments = [
        (
            replace(config, seed=seed),
            folders[seed],
            resume and saved_checkpoint(folders[seed], config.algo) is not None,
            progress and executor.in_process,
            argv,
            None if tensorboard is None else tensorboard / f"seed_{seed}" if per_seed_dirs else tensorboard,
        )
        for seed in pending
    ]
    if progress and not executor.in_process:
        print(f"seeds {pending}: {executor.kind} runs, {executor.worker_threads()} torch threads each", flush=True)
    finished.update(zip(pending, executor.map(run, arguments, [f"seed {seed}" for seed in pending]), strict=True))
    per_seed = [finished[seed] for seed in seeds]
    if any(metrics is None for metrics in per_seed):  # a torchrun rank other than 0: rank 0 writes the summary
        return {}
    return write_summary(per_seed, out_dir)


def finished_metrics(folder: Path) -> dict | None:
    """The metrics.json of a finished run in `folder`; None where there is none, and, with a warning naming the file,
    where it is not readable JSON (a run killed while an older version wrote it): that seed runs again."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        warnings.warn(f"{path} is not readable JSON ({error}): that seed runs again", stacklevel=2)
        return None


def saved_checkpoint(folder: Path, algo: str) -> dict | None:
    """The checkpoint a run in `folder` resumes from; None where there is none, and, with a warning naming the file,
    where it is not a readable checkpoint: that seed starts again from nothing."""
    path = folder / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        return read_run_checkpoint(path, algo)
    except ValueError as error:
        warnings.warn(f"{error}: that seed starts again", stacklevel=2)
        return None


def read_run_checkpoint(path: Path, algo: str) -> dict:
    """The checkpoint of a run of `algo` ("mbrl" or "rl2"); ValueError naming the file when it is not readable."""
    return (read_rl2_checkpoint if algo == "rl2" else read_training_checkpoint)(path)
