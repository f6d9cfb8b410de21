"""Section `pipeline`: seconds per stage of a pipeline run (`--quick` sizes, or the default run of Pendulum-v1).

The stages are the ones `pipeline.run.run` times into metrics.json (`timing.stages`): setup, random-policy
collection, training (with on-policy rounds), val selection + prediction, control on test and on OOD tasks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.config import defaults_for
from pipeline.run import run as run_pipeline

ENV_ID = "Pendulum-v1"


def run(quick: bool = False) -> dict:
    """One seed of the pipeline; prints and returns its seconds per stage."""
    config = defaults_for(ENV_ID, quick)
    with tempfile.TemporaryDirectory() as out_dir:
        metrics = run_pipeline(config, Path(out_dir), progress=False)
    stages = metrics["timing"]["stages"]
    total = metrics["timing"]["total_s"]
    print(f"{ENV_ID} pipeline ({'--quick sizes' if quick else 'default run'}), seconds per stage:")
    for stage, seconds in stages.items():
        print(f"  {stage.removesuffix('_s'):<14}{seconds:8.1f} s  {seconds / total:6.1%}")
    print(f"  {'total':<14}{total:8.1f} s (target for the default run: <= 120 s on 2 cores)")
    return {"env_id": ENV_ID, "quick": quick, "stages_s": stages, "total_s": total}
