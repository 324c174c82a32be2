"""DDP for the trainer: started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set),
a training joins the process group (gloo on CPU, nccl on CUDA, each rank on
``cuda:LOCAL_RANK``); the logged losses are averaged over the ranks.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from akira_nb import runtime


def dist_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` when started by torchrun with more than one process,
    else None."""
    if not all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return None
    world = int(os.environ["WORLD_SIZE"])
    if world < 2:
        return None
    return int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"])


def dist_device(device: str) -> torch.device:
    """The device of this process: ``cfg.device`` (``auto``: CUDA when present), and under DDP
    on CUDA the local rank's GPU."""
    dev = runtime.get_device(device)
    env = dist_env()
    if env is not None and dev.type == "cuda":
        dev = torch.device("cuda", env[2])
        torch.cuda.set_device(dev)
    return dev


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the torchrun process group for the block (gloo on CPU, nccl on CUDA) when started
    by torchrun and none exists yet; barrier and leave it afterwards. Yields ``(rank, world)``
    (``(0, 1)`` in one process)."""
    env = dist_env()
    if env is None:
        yield 0, 1
        return
    if dist.is_initialized():
        yield dist.get_rank(), dist.get_world_size()
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def rank_mean(values: torch.Tensor, world: int) -> torch.Tensor:
    """``values`` averaged over the DDP ranks (a copy; ``values`` itself when alone)."""
    if world == 1:
        return values
    out = values.clone()
    dist.all_reduce(out)
    return out / world


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA; a no-op elsewhere): before a timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
