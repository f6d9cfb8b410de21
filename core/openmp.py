"""How torch's OpenMP threads wait, chosen by the project's programs (never by importing the library).

OpenMP reads its settings once, when torch loads it: a program calls `set_wait_policy()` before its first import
of torch, and local worker processes inherit it; Ray workers get `openmp_environment()` as theirs. The policy
shortens how long a waiting thread spins before it sleeps (`GOMP_SPINCOUNT=1000`): with GNU OpenMP's default
300,000 spins, a thread whose partner has lost its core to another process burns its own time slice at every
barrier (`docs/benchmarks.md`, section `shared`). A user's own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is left as
it is. It changes speed, never a number.
"""

from __future__ import annotations

import os

SPIN_COUNT = "1000"
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def wait_policy() -> dict[str, str]:
    """The environment variables of the policy: none where the user chose OpenMP's waiting already."""
    if any(name in os.environ for name in OPENMP_VARIABLES):
        return {}
    return {"GOMP_SPINCOUNT": SPIN_COUNT}


def set_wait_policy() -> None:
    """Apply the policy to this process (and the processes it starts); call it before torch is imported."""
    os.environ.update(wait_policy())


def openmp_environment() -> dict[str, str]:
    """This process's OpenMP waiting settings, for processes that do not inherit its environment (Ray workers)."""
    return {name: os.environ[name] for name in OPENMP_VARIABLES if name in os.environ}
