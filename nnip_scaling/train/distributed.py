"""Data-parallel training under ``torchrun`` (paper: single-device runs; this scales the same loop out).

Launch any script that calls :func:`init_distributed` and then :func:`~nnip_scaling.train.train` with::

    torchrun --nproc_per_node 2 my_training_script.py

:func:`init_distributed` reads the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and starts the process group: ``gloo`` on CPU,
``nccl`` when CUDA is available. :func:`~nnip_scaling.train.train` notices an initialised process group
and then

* wraps the model in ``DistributedDataParallel`` (which broadcasts rank 0's initial weights and
  averages gradients, so the parameters stay identical on every rank);
* gives each rank an equal, disjoint share of every global batch (``batch_size`` molecules in all,
  which must be divisible by the world size), drawn from one order shared by all ranks;
* scales each rank's loss so that the averaged gradient is the gradient of the mean loss over the
  global batch, the same as single-process training on that batch (up to summation order);
* evaluates each rank's share of the validation set and sums the results across ranks;
* writes logs and checkpoints from rank 0 only (every rank reads the checkpoint on resume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DistInfo", "init_distributed", "dist_info"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a data-parallel job.

    Attributes:
        rank: this process's rank (0 when not distributed).
        world_size: number of processes (1 when not distributed).
        local_rank: rank on this machine (selects the GPU).
        device: the device this rank should train on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the rank that writes logs and checkpoints."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def init_distributed(backend: str | None = None) -> DistInfo:
    """Start the process group from ``torchrun``'s environment (no-op for a single process).

    Args:
        backend: ``"gloo"``, ``"nccl"`` or ``None`` (``"nccl"`` if CUDA is available, else ``"gloo"``).

    Returns:
        :class:`DistInfo` for this process. With ``WORLD_SIZE`` unset or 1 nothing is initialised and
        rank 0 of 1 is returned.

    Raises:
        ValueError: malformed environment variables or an unknown backend.
    """
    import torch.distributed as dist

    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if backend is not None and backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {backend!r}")
    cuda = torch.cuda.is_available()
    if backend is None:
        backend = "nccl" if cuda else "gloo"
    device = torch.device("cuda", local_rank) if (cuda and backend == "nccl") else torch.device("cpu")
    if world > 1 and dist.is_available() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return dist_info() if world > 1 else DistInfo(0, 1, 0, device)


def dist_info() -> DistInfo:
    """:class:`DistInfo` of the current process group (rank 0 of 1 when none is initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo(0, 1, 0, torch.device("cpu"))
    local_rank = _env_int("LOCAL_RANK", 0)
    backend = dist.get_backend()
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)
