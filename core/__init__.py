"""The state space model and what every other package builds on.

Importing `core` (which the project's programs do before torch loads) shortens how long torch's OpenMP threads
spin before they sleep (`GOMP_SPINCOUNT=1000`, unless `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` is set): with GNU
OpenMP's default 300,000 spins, a thread whose partner has lost its core to another process burns its own time
slice at every barrier, and a run beside one busy process took 2.6-3.3x as long; with 1,000 spins 1.0-1.6x, at
about 15% on a quiet machine (`docs/benchmarks.md`, section `shared`). It changes speed, never a number.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
