"""Every seed of a run derives from its base seed through one function.

    derive_seed(base, "collect", task_position)   -> int in [0, 2**32)

`numpy.random.SeedSequence` mixes (base, purpose, *ids) into statistically independent streams, so two
purposes or two ids never share a seed by an accident of arithmetic (as `base * 1000 + i` offsets do).
The purpose string enters through its CRC-32, which is stable across processes and Python versions.
"""

from __future__ import annotations

import random
import zlib

import numpy as np
import torch


def derive_seed(base: int, purpose: str, *ids: int) -> int:
    """A 32-bit seed for `purpose` (a name such as "collect" or "control") and integer `ids` under `base`."""
    if not isinstance(base, int) or isinstance(base, bool) or base < 0:
        raise ValueError(f"derive_seed needs a base seed that is an int >= 0, got {base!r}")
    for value in ids:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"derive_seed ids must be ints >= 0, got {ids!r}")
    entropy = [base, zlib.crc32(purpose.encode()), *(int(value) for value in ids)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
