"""The sinusoid regression task family of Finn et al. 2017 (MAML, section 5.1).

Task: y = A sin(x + phi) with A ~ U[0.1, 5], phi ~ U[0, pi]; inputs x ~ U[-5, 5]; model: MLP 1-40-40-1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)


def sinusoid_mlp(hidden: int = 40) -> nn.Sequential:
    """The paper's regressor: 1 -> hidden -> hidden -> 1 with ReLU."""
    return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def sample_sinusoid_tasks(
    num_tasks: int, support_size: int, query_size: int, generator: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`num_tasks` tasks as (support_x (K, 1), support_y (K, 1), query_x (Q, 1), query_y (Q, 1))."""
    amplitude = torch.empty(num_tasks).uniform_(*AMPLITUDE_RANGE, generator=generator)
    phase = torch.empty(num_tasks).uniform_(*PHASE_RANGE, generator=generator)
    x = torch.empty(num_tasks, support_size + query_size, 1).uniform_(*INPUT_RANGE, generator=generator)
    y = amplitude.view(-1, 1, 1) * torch.sin(x + phase.view(-1, 1, 1))
    return [
        (x[i, :support_size], y[i, :support_size], x[i, support_size:], y[i, support_size:]) for i in range(num_tasks)
    ]
