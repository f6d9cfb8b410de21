"""torch.distributed helpers: shard a meta-batch across ranks and average what they computed.

Every helper is a no-op in a single process (torch.distributed not initialised or world size 1), so
the same code runs under `python main.py` and `torchrun --nproc_per_node=N main.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

Item = TypeVar("Item")


def launched_rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes as torchrun launched them (its RANK and WORLD_SIZE), before
    any process group exists; (0, 1) for a process started otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def rank_and_world_size() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world_size()[0] == 0


def shard(items: Sequence[Item]) -> list[Item]:
    """This rank's share of `items`: every world_size-th item starting at its rank."""
    rank, world_size = rank_and_world_size()
    return list(items[rank::world_size])


def all_reduce_sum_(tensors: Iterable[torch.Tensor]) -> None:
    """Sum each tensor over ranks, in place."""
    if rank_and_world_size()[1] == 1:
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def all_reduce_gradients_(parameters: Iterable[torch.Tensor]) -> None:
    """Sum `.grad` over ranks; a rank that computed no gradient for a parameter contributes zeros."""
    if rank_and_world_size()[1] == 1:
        return
    parameters = list(parameters)
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    all_reduce_sum_(parameter.grad for parameter in parameters)


def all_gather_objects(local: Item) -> list[Item]:
    """Every rank's `local`, in rank order (a one-element list in a single process)."""
    if rank_and_world_size()[1] == 1:
        return [local]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return gathered


def sharded_backward(
    shard_loss: Callable[[list[Item]], torch.Tensor], items: Sequence[Item], parameters: Iterable[torch.Tensor]
) -> float:
    """Backward of this rank's share of a loss summed over `items`, then gradients and loss summed over ranks.

    `shard_loss(local_items)` returns this rank's part of the total loss (already divided by the global
    count where the loss is a mean). Returns the total loss; `.grad` of `parameters` holds its gradient.
    """
    parameters = list(parameters)
    local = shard(items)
    loss = shard_loss(local) if local else torch.zeros((), device=parameters[0].device)
    if loss.requires_grad:
        loss.backward()
    all_reduce_gradients_(parameters)
    loss = loss.detach().clone()
    all_reduce_sum_([loss])
    return float(loss)
