"""Many runs: one complete run per seed, then the summary over them.

run_seeds(config, seeds, out_dir)        <out_dir>/seed_<S>/ per seed (each resumable), summary.json/.md beside
run_seeds(config, [S], out_dir, per_seed_dirs=False)      one seed written into <out_dir> itself
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pipeline.config import PipelineConfig, check_resumable
from pipeline.run import run
from pipeline.summary import write_summary


def run_seeds(
    config: PipelineConfig,
    seeds: list[int],
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    per_seed_dirs: bool = True,
) -> dict:
    """One complete run per seed in <out_dir>/seed_<S>/ (each resumable), then summary.json and summary.md.

    `per_seed_dirs=False` (one seed, `--seed S`): the run writes into `out_dir` itself, summary beside it.
    """
    if not per_seed_dirs and len(seeds) != 1:
        raise ValueError(f"a run without per-seed folders has one seed, got {seeds}")
    per_seed = []
    for seed in seeds:
        seed_dir = out_dir / f"seed_{seed}" if per_seed_dirs else out_dir
        if resume and (seed_dir / "metrics.json").is_file():  # a finished seed is read back, not rerun
            finished = json.loads((seed_dir / "metrics.json").read_text())
            saved = PipelineConfig.from_dict(finished["config"])
            check_resumable(saved, replace(config, seed=seed, input_dim=saved.input_dim), seed_dir)
            per_seed.append(finished)
            continue
        resume_seed = resume and (seed_dir / "checkpoint.pt").is_file()
        per_seed.append(run(replace(config, seed=seed), seed_dir, resume=resume_seed, progress=progress))
    if any(metrics is None for metrics in per_seed):  # a torchrun rank other than 0: rank 0 writes the summary
        return {}
    return write_summary(per_seed, out_dir)
