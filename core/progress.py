"""Progress output: a tqdm bar on a terminal; in a log file or CI (no terminal), one line per stage with the
seconds since the program started."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

STARTED = time.perf_counter()


def progress_bar(items: Iterable, progress: bool, desc: str) -> Iterable:
    """`items` with a tqdm bar on a terminal, or one line "[   12 s] desc" when output goes to a file."""
    interactive = progress and sys.stderr.isatty()
    if progress and not interactive:
        print(f"[{time.perf_counter() - STARTED:6.0f} s] {desc}", flush=True)
    return tqdm(items, desc=desc, disable=not interactive, leave=False)
