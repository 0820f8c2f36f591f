"""Sharding an evaluation across processes under ``torch.distributed`` and merging its counts.

:func:`art_spatial.bench.evaluate` calls these helpers: when a default process group is initialized
with more than one process, each rank evaluates the examples ``rank, rank + world, rank + 2·world, …``
and the per-attack counts (robust points per strength, passes, size sums) are summed with
``all_reduce`` (maxima with ``MAX``), so every rank ends with the same merged report. Per-example
random streams (seeded by the example's bytes) make the merged report equal to a one-process run.

Launch: ``torchrun --nproc_per_node=2 -m art_spatial.cli evaluate ...`` (gloo on CPU, nccl on GPU);
:func:`init_from_env` starts the process group from torchrun's environment variables.

Example:
    >>> dist_info()
    (0, 1)
    >>> shard_indices(5, 1, 2).tolist()
    [1, 3]
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "dist_info",
    "shard_indices",
    "all_reduce_sum",
    "all_reduce_max",
    "all_reduce_tensor",
    "all_reduce_fields",
    "init_from_env",
    "barrier",
    "is_main",
    "local_shard",
    "parse_shard",
]

#: ``(index, count)`` of a job-array shard set by :func:`local_shard` (no process group), or None
_SHARD: tuple | None = None


def _active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def dist_info() -> tuple:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` when none is initialized
    (inside :func:`local_shard`: the shard's ``(index, count)``)."""
    if _SHARD is not None:
        return _SHARD
    if not _active():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def is_main() -> bool:
    """True on rank 0 (or without a process group, or in a :func:`local_shard`: a shard is the only
    writer of its own files)."""
    return _SHARD is not None or dist_info()[0] == 0


def parse_shard(text: str) -> tuple:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (``ValueError`` naming ``--shard`` otherwise).

    >>> parse_shard("1/4")
    (1, 4)
    """
    try:
        i, n = (int(t) for t in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must be 'i/n' (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


@contextlib.contextmanager
def local_shard(index: int, count: int):
    """Evaluate shard ``index`` of ``count`` in this process, without a process group (job arrays).

    Inside the block :func:`dist_info` answers ``(index, count)``, so :func:`art_spatial.bench.evaluate`
    attacks the examples ``index, index + count, ...``; the reductions see no process group and keep
    this shard's counts, which ``art-spatial merge`` sums afterwards.
    """
    global _SHARD
    if _active() and torch.distributed.get_world_size() > 1:
        raise ValueError("--shard cannot be combined with a multi-process torch.distributed group")
    shard_indices(0, index, count)  # validates
    old, _SHARD = _SHARD, (int(index), int(count))
    try:
        yield
    finally:
        _SHARD = old


def shard_indices(n: int, rank: int, world: int) -> np.ndarray:
    """Indices of the examples rank ``rank`` evaluates (strided: class-balanced shards)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(
            f"rank must be in [0, world) with world >= 1, got rank={rank}, world={world}"
        )
    return np.arange(rank, n, world)


def _reduce(values: Sequence[float], op) -> list[float]:
    vals = [float(v) for v in values]
    if not _active() or torch.distributed.get_world_size() == 1 or not vals:
        return vals
    backend = torch.distributed.get_backend()
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if backend == "nccl"
        else torch.device("cpu")
    )
    t = torch.tensor(vals, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t, op=op)
    return t.cpu().tolist()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64: exact for counts below 2**53)."""
    return _reduce(
        values, torch.distributed.ReduceOp.SUM if torch.distributed.is_available() else None
    )


def all_reduce_max(values: Sequence[float]) -> list[float]:
    """Element-wise maximum over ranks."""
    return _reduce(
        values, torch.distributed.ReduceOp.MAX if torch.distributed.is_available() else None
    )


def all_reduce_fields(
    values: dict[str, Sequence[float]], op: str = "sum"
) -> dict[str, list[float]]:
    """Every named field of ``values`` reduced element-wise over the ranks (``op``: ``"sum"`` or
    ``"max"``) in one collective; the fields keep their names and lengths.

    >>> all_reduce_fields({"robust": [3, 2], "passes": [12]})
    {'robust': [3.0, 2.0], 'passes': [12.0]}
    """
    if op not in ("sum", "max"):
        raise ValueError(f"op must be 'sum' or 'max', got {op!r}")
    flat = [v for vals in values.values() for v in vals]
    reduced = all_reduce_sum(flat) if op == "sum" else all_reduce_max(flat)
    out, start = {}, 0
    for name, vals in values.items():
        out[name] = reduced[start : start + len(vals)]
        start += len(vals)
    return out


def all_reduce_tensor(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``t`` reduced element-wise over the ranks (``op``: ``"sum"`` or ``"max"``), as a new tensor.

    Stays on ``t``'s device (no host round trip; nccl needs a CUDA tensor, gloo takes CPU and CUDA
    tensors). Without a multi-process group it returns a copy of ``t``.

    >>> all_reduce_tensor(torch.tensor([1.0, 2.0])).tolist()
    [1.0, 2.0]
    """
    if op not in ("sum", "max"):
        raise ValueError(f"op must be 'sum' or 'max', got {op!r}")
    out = t.detach().clone()
    if not _active() or torch.distributed.get_world_size() == 1:
        return out
    red = torch.distributed.ReduceOp.SUM if op == "sum" else torch.distributed.ReduceOp.MAX
    torch.distributed.all_reduce(out, op=red)
    return out


def barrier() -> None:
    """Synchronize the ranks (no-op without a process group)."""
    if _active() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def init_from_env(backend: str = None) -> bool:
    """Initialize the default process group from torchrun's variables (``WORLD_SIZE`` > 1).

    Backend: ``nccl`` when CUDA is available, else ``gloo`` (override with ``backend``).
    Returns True when a multi-process group is active after the call.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return False
    if not torch.distributed.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        torch.distributed.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        logger.info(
            "initialized process group: backend %s, rank %d of %d",
            backend,
            torch.distributed.get_rank(),
            world,
        )
    return True
