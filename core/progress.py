"""Progress output: a tqdm bar on a terminal, one line per stage in a log file or CI."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress_bar(items: Iterable, progress: bool, desc: str) -> Iterable:
    """A tqdm bar on a terminal; where output goes to a file or a CI log (no TTY), one line when it starts."""
    interactive = progress and sys.stderr.isatty()
    if progress and not interactive:
        print(desc, flush=True)
    return tqdm(items, desc=desc, disable=not interactive, leave=False)
