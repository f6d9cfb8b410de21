"""Importing the library changes no process-wide setting; the programs choose OpenMP's waiting before torch loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.openmp import SPIN_COUNT, openmp_environment, set_wait_policy, wait_policy

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
before = (dict(os.environ), matplotlib.get_backend())
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps({"environ": dict(os.environ) == before[0], "backend": [before[1], matplotlib.get_backend()],
                  "added": sorted(set(os.environ) - set(before[0]))}))
"""


def test_importing_the_library_leaves_the_environment_and_the_matplotlib_backend_alone():
    environment = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "svg"}  # no OpenMP setting, a backend a notebook chose
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, *LIBRARY], capture_output=True, text=True, env=environment, check=True
    )
    seen = json.loads(finished.stdout)
    assert seen["added"] == [] and seen["environ"], seen
    assert seen["backend"] == ["svg", "svg"]


def test_the_programs_set_the_spin_count_before_torch_loads():
    probe = "import runpy, sys, os; sys.argv = ['main.py', '--help']; import main; print(os.environ['GOMP_SPINCOUNT'])"
    finished = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert finished.stdout.strip() == SPIN_COUNT, finished.stderr


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "5"}])
def test_a_users_own_openmp_setting_is_kept(monkeypatch, user):
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in user.items():
        monkeypatch.setenv(name, value)
    assert wait_policy() == {}
    set_wait_policy()
    assert openmp_environment() == user


def test_without_a_users_setting_the_policy_is_the_short_spin(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    set_wait_policy()
    assert openmp_environment() == {"GOMP_SPINCOUNT": SPIN_COUNT}
