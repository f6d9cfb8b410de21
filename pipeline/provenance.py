"""Where a run's numbers came from: the code's commit, the library versions, the command and the machine.

    provenance(argv)  -> {"git_commit", "git_dirty", "versions", "argv", "threads", "threads_follow_load", "cpu",
                          "device"}

Outside a git checkout (an installed wheel) the commit is "unknown" and `git_dirty` None. Changes to what the
programs publish (docs/, the Markdown files) do not make the code dirty: a reproduction that wrote its results into
the checkout resumes from the same commit.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import torch

from core import threads

CODE_ROOT = Path(__file__).resolve().parents[1]
VERSIONED = ("torch", "gymnasium", "mujoco", "numpy")
NOT_CODE = (":(exclude)docs", ":(exclude,glob)**/*.md")  # pathspecs of what is published, not run


def _git(*arguments: str) -> str | None:
    """`git <arguments>` in the code's folder; None where that folder is not a git checkout (or git is missing)."""
    try:
        finished = subprocess.run(
            ["git", *arguments], cwd=CODE_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return finished.stdout.strip() if finished.returncode == 0 else None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    """The CPU model ("model name" in /proc/cpuinfo on Linux, `platform.processor()` elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def provenance(argv: list[str], device: str) -> dict:
    """The record of this process: code commit and dirtiness, versions, the command line `argv`, torch's thread
    count (following the load, `core.threads`: the most it may use), the CPU model and the name of `device`."""
    top_level = _git("rev-parse", "--show-toplevel")
    in_checkout = top_level is not None and Path(top_level).resolve() == CODE_ROOT  # not a venv inside some repo
    commit = _git("rev-parse", "HEAD") if in_checkout else None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE) if commit is not None else None
    return {
        "git_commit": commit or "unknown",
        "git_dirty": None if status is None else bool(status),
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in VERSIONED}},
        "argv": list(argv),
        "threads": threads.thread_limit()[0],
        "threads_follow_load": threads.thread_limit()[1],
        "cpu": _cpu(),
        "device": device_name(device),
    }


def command_line(arguments: list[str] | None = None) -> list[str]:
    """The command line a run records: the program's name and `arguments` (default: this process's)."""
    return [Path(sys.argv[0]).name, *(sys.argv[1:] if arguments is None else arguments)]
