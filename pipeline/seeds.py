"""One run per seed, through the executor, then the summary over them.

run_seeds(config, seeds, out_dir)                       <out_dir>/seed_<S>/ per seed, summary.json/.md beside
run_seeds(config, [S], out_dir, per_seed_dirs=False)    one seed written into <out_dir> itself
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pipeline.config import PipelineConfig, check_resumable, resolve_device
from pipeline.executor import Executor
from pipeline.report.summary import write_summary
from pipeline.run import run
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
        if resume and (folder / "metrics.json").is_file():  # a finished seed is read back, not rerun
            metrics = json.loads((folder / "metrics.json").read_text())
            saved = PipelineConfig.from_dict(metrics["config"])
            check_resumable(saved, as_saved(replace(config, seed=seed)), folder)
            finished[seed] = metrics
    pending = [seed for seed in seeds if seed not in finished]
    arguments = [
        (
            replace(config, seed=seed),
            folders[seed],
            resume and (folders[seed] / "checkpoint.pt").is_file(),
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
