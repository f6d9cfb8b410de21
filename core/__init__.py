"""The state space model and what every other package builds on.

Importing `core` (which every module of the project does before torch loads) shortens how long torch's OpenMP
threads spin before they sleep (`GOMP_SPINCOUNT=1000`, unless `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` is set):
with GNU OpenMP's default, a thread whose partner has lost its core to another process burns its own time slice
spinning at every barrier, and a run beside one busy process took 2.7x as long; with 1,000 spins it takes 1.1x,
and alone the same time (`docs/benchmarks.md`, section `shared`). It changes speed, never a number.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
