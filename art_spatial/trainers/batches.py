"""Where a training batch comes from: seeds, the epoch's batch order, input checks and conversion.

Every random draw of a training run is seeded from ``(seed, epoch, batch, tag)`` by :func:`derive_seed`
(:class:`BatchContext` carries the position and hands out the seeds and generators); the batch order
of an epoch is a permutation drawn from ``(seed, epoch)`` (:func:`epoch_batches`). Data arrive as
numpy in the classifier's layout and enter the loop as float32 ``N x C x H x W`` tensors on the
classifier's device (:func:`as_batch`).

Example:
    >>> import numpy as np
    >>> x, y = np.zeros((5, 1, 2, 2), "float32"), np.arange(5)
    >>> [yb.tolist() for _, yb in epoch_batches(x, y, 2, seed=0, epoch=0)]
    [[0, 2], [3, 1], [4]]
    >>> ctx = BatchContext(epoch=0, batch=1, seed=0)
    >>> ctx.seed_for(0) == derive_seed(0, 0, 1, 0)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_images, check_labels

__all__ = ["derive_seed", "BatchContext", "epoch_batches", "as_batch", "check_x", "check_y"]


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integers via ``numpy.random.SeedSequence``, e.g.
    ``derive_seed(seed, epoch, batch, tag)``.

    >>> derive_seed(1, 2, 3) == derive_seed(1, 2, 3) != derive_seed(1, 2, 4)
    True
    """
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0] >> 1
    )


@dataclass
class BatchContext:
    """Where the loop is: ``epoch`` (0-based), ``batch`` (0-based inside the epoch), the trainer ``seed``.

    Under distributed training (:mod:`torch.distributed`, several ranks) a rank holds only part of the
    global batch: ``n_global`` is the size of the global batch and ``positions`` (int64 tensor) the
    positions of this rank's examples in it. Both are None in a single process. A per-example random
    draw made for the whole global batch and cut with :meth:`local` is the same on any number of ranks.

    >>> ctx = BatchContext(epoch=0, batch=0, seed=0, n_global=4, positions=torch.tensor([1, 3]))
    >>> ctx.local(torch.arange(4)).tolist()
    [1, 3]
    """

    epoch: int
    batch: int
    seed: int
    n_global: int | None = None
    positions: torch.Tensor | None = None

    def local(self, draw: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``draw``, a per-example draw of the whole global batch (first dimension
        ``n_global``); ``draw`` itself in a single process."""
        return draw if self.positions is None else draw[self.positions.to(draw.device)]

    def seed_for(self, tag: int) -> int:
        """Deterministic seed of this (seed, epoch, batch) for the random source number ``tag``."""
        return derive_seed(self.seed, self.epoch, self.batch, tag)

    def generator(self, tag: int) -> torch.Generator:
        """A CPU ``torch.Generator`` seeded by :meth:`seed_for`."""
        return torch.Generator().manual_seed(self.seed_for(tag))


def epoch_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
):
    """The batches of one epoch of arrays ``x``, ``y``, in a permutation drawn from ``(seed, epoch)``.

    Yields ``(x_b, y_b)`` in a single process (``world == 1``). Under distributed training every rank
    draws the same global batch and keeps the positions ``rank, rank + world, ...`` of it, yielding
    ``(x_b, y_b, n_global, positions)``.
    """
    perm = np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x5EED])).permutation(
        x.shape[0]
    )
    for start in range(0, x.shape[0], batch_size):
        idx = perm[start : start + batch_size]
        if world == 1:
            yield x[idx], y[idx]
        else:
            pos = np.arange(rank, idx.shape[0], world)
            yield x[idx[pos]], y[idx[pos]], int(idx.shape[0]), torch.as_tensor(pos)


def as_batch(
    x_np, device: torch.device, *, channels_first: bool = True, channels_last: bool = False
) -> torch.Tensor:
    """A float32 ``N x C x H x W`` tensor on ``device`` from data in the classifier's layout
    (``N x H x W x C`` when not ``channels_first``), in ``torch.channels_last`` memory format if asked.

    >>> as_batch(np.zeros((2, 4, 4, 3)), torch.device("cpu"), channels_first=False).shape
    torch.Size([2, 3, 4, 4])
    """
    xb = torch.as_tensor(np.asarray(x_np, dtype=np.float32), device=device)
    xb = xb if channels_first else xb.permute(0, 3, 1, 2).contiguous()
    if channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb


def check_x(classifier, x, name: str = "x") -> np.ndarray:
    """``x`` as a non-empty numpy array of images that fit ``classifier`` (shape, layout, clip range);
    ``ValueError`` naming ``name`` otherwise."""
    x = np.asarray(x)
    check_images(
        x,
        name=name,
        input_shape=classifier.input_shape,
        channels_first=bool(getattr(classifier, "channels_first", True)),
        clip_values=classifier.clip_values,
    )
    if x.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    return x


def check_y(classifier, y, n: int, name: str = "y") -> np.ndarray:
    """``n`` class indices from indices or one-hot rows, within the classifier's classes."""
    return check_labels(y, n, classifier.nb_classes, name=name)
