"""Data-parallel RL under ``torchrun`` / ``accelerate launch``: every rank samples and scores its share of each
iteration's prompts, the gradients of every mini-batch are averaged across ranks before the optimizer step, and
rank 0 alone writes the run. With the same seed every rank starts from the same weights (the fresh adapter is
seeded, the value head is zero), so averaged gradients keep them identical; the run checks that at the end.

Without a launcher (``WORLD_SIZE`` unset or 1) every function here is a no-op on one process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def world() -> tuple[int, int]:
    """(rank, world size) of this process, starting the process group on first use under a launcher (gloo on CPU,
    NCCL when CUDA is there)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(params: Iterable[Any]) -> None:
    """Each parameter's gradient becomes the mean over ranks (what DDP does, for the few LoRA and value-head
    tensors: one all-reduce of them flattened together)."""
    if not _active():
        return
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    at = 0
    for g in grads:
        g.copy_(flat[at: at + g.numel()].view_as(g))
        at += g.numel()


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank); ``[obj]`` on one process."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        import torch.distributed as dist

        dist.barrier()


def shard(items: list[Any], rank: int, size: int) -> list[Any]:
    """This rank's share of one iteration's batch: every ``size``-th item from ``rank``."""
    return items[rank::size]
