"""What the programs print for a person: a refusal as one line with a pointer to --help, warnings as one line each,
and MuJoCo's own warnings once per process instead of once per model compiled.

    parser = OneLineParser(prog="main.py", ...)     # parser.error(message) -> "main.py: error: ..." and exit 2
    warn("--planner.horizon 1000 exceeds ...")      # "warning: ..." on stderr
    quiet_warnings()                                # the programs and their workers, never on import: Python's
                                                    # warnings as one line, MuJoCo's once per process
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals are one line and a pointer to --help, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def quiet_warnings() -> None:
    """Python's warnings as one line each ("warning: ..."), and MuJoCo's once per process."""
    warnings.showwarning = lambda message, *_: warn(str(message))
    show_mujoco_warnings_once()


def show_mujoco_warnings_once() -> None:
    """Route MuJoCo's warnings through `warn`, each distinct text once: gymnasium's own models raise one deprecation
    warning per compiled model, dozens a run, and MuJoCo would also write each into MUJOCO_LOG.TXT in the working
    folder. Does nothing where MuJoCo is not installed."""
    try:
        import mujoco
    except ImportError:
        return
    seen: set[str] = set()

    def once(text: str) -> None:
        if text not in seen:
            seen.add(text)
            warn(f"MuJoCo: {text}")

    mujoco.set_mju_user_warning(once)
