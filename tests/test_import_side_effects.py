"""Importing the library changes no process-wide setting: the environment, the matplotlib backend, torch's threads."""

from __future__ import annotations

import json
import subprocess
import sys

LIBRARY = (
    "core.ssm",
    "meta_rl.meta_maml",
    "meta_rl.rl2",
    "adaptation.test_time_adaptation",
    "adaptation.online",
    "env_runner.environment",
    "planning.planner",
    "pipeline.run",
    "pipeline.report.plots",
    "pipeline.report.pages",
)
PROBE = """
import json, os, sys
import gymnasium, matplotlib, numpy, scipy, torch  # the dependencies' own import effects are theirs
before = (dict(os.environ), matplotlib.get_backend(), torch.get_num_threads())
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps({"environ": dict(os.environ) == before[0], "backend": [before[1], matplotlib.get_backend()],
                  "added": sorted(set(os.environ) - set(before[0])), "threads": [before[2], torch.get_num_threads()]}))
"""


def test_importing_the_library_leaves_the_environment_the_matplotlib_backend_and_the_threads_alone():
    environment = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "svg"}  # a backend a notebook chose
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, *LIBRARY], capture_output=True, text=True, env=environment, check=True
    )
    seen = json.loads(finished.stdout)
    assert seen["added"] == [] and seen["environ"], seen
    assert seen["backend"] == ["svg", "svg"]
    assert seen["threads"][0] == seen["threads"][1], seen
